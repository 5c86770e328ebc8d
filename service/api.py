"""Request and response bodies of the query API."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from index_store import PostFilter
from schemas import AttrValue
from schemas.events import PostFormat
from schemas.fields import EntityId, Label


class FeedItem(BaseModel):
    """One retrieved post."""

    post_id: str
    score: float = Field(description="cosine similarity between query and post")
    author_id: str | None = None
    format: str | None = None
    language: str | None = None
    created_at_ms: int | None = None
    rank_score: float | None = Field(
        None, description="the GR's combined score (ranked feeds only)"
    )
    task_scores: dict[str, float] | None = Field(
        None, description="the GR's probability per task (ranked feeds only)"
    )


class FeedResponse(BaseModel):
    """A member's feed: retrieved by the member's vector (their own posts excluded), then
    ranked by the GR when one is loaded; ``ranking`` says which order the items are in."""

    member_id: str
    items: list[FeedItem]
    ranking: Literal["retrieval", "gr"] = "retrieval"
    ranking_note: str | None = Field(
        None, description="why the items are in retrieval order, when they are"
    )
    ranker_version: str | None = None
    model_version: str


class RankRequest(BaseModel):
    """Posts to score for a member with the GR ranker."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no true for 1, "3" for 3

    member_id: EntityId
    post_ids: list[EntityId] = Field(min_length=1)
    task_weights: dict[str, float] | None = Field(
        None, description="weight per task of the combined score; default: the checkpoint's"
    )
    device: Label | None = Field(None, description="default: the member's last device")


class RankedPost(BaseModel):
    """One scored post."""

    post_id: str
    score: float = Field(description="sum over tasks of weight * probability")
    task_scores: dict[str, float]


class RankResponse(BaseModel):
    """Scored posts, best first; posts the index does not hold are listed, not scored."""

    member_id: str
    items: list[RankedPost]
    unknown_post_ids: list[str]
    history_steps: int = Field(description="engagements of the member the ranker saw")
    ranker_version: str


class SearchFilters(BaseModel):
    """Which posts may be returned; applied before top-k, so ``k`` results come back whenever
    ``k`` posts pass. Lists are "any of"; omitted fields do not filter."""

    model_config = ConfigDict(extra="forbid")

    languages: list[Label] | None = None
    formats: list[PostFormat] | None = None
    authors: list[EntityId] | None = None
    created_after_ms: int | None = Field(None, ge=0, description="created at or after")
    exclude_post_ids: list[EntityId] = Field(
        default_factory=list, description="e.g. posts the member already saw"
    )

    def post_filter(self, exclude_authors: frozenset[str] = frozenset()) -> PostFilter:
        """The index store's filter for these conditions."""
        return PostFilter(
            languages=None if self.languages is None else frozenset(self.languages),
            formats=None if self.formats is None else frozenset(self.formats),
            authors=None if self.authors is None else frozenset(self.authors),
            exclude_authors=exclude_authors,
            created_after_ms=self.created_after_ms,
            exclude_posts=frozenset(self.exclude_post_ids),
        )


class RetrieveRequest(BaseModel):
    """Retrieve by a member's vector or by free text; exactly one of the two."""

    member_id: EntityId | None = None
    text: str | None = Field(None, min_length=1)
    k: int = Field(10, ge=1)
    exclude_own_posts: bool = Field(True, description="with member_id: skip their own posts")
    filters: SearchFilters = Field(default_factory=SearchFilters)

    @model_validator(mode="after")
    def _exactly_one_query(self) -> RetrieveRequest:
        if (self.member_id is None) == (self.text is None):
            raise ValueError("give exactly one of member_id or text")
        return self


class RetrieveResponse(BaseModel):
    """Retrieved posts, best first."""

    items: list[FeedItem]
    model_version: str


class PostInfo(BaseModel):
    """An indexed post: its attributes and when it became visible."""

    post_id: str
    version: int
    attrs: dict[str, AttrValue]
    model_version: str
    prompt_version: str
    event_time_ms: int = Field(description="time of the event behind this version, e.g. its edit")
    indexed_at_ms: int


class IndexStats(BaseModel):
    """Size, readiness and freshness of the index."""

    ready: bool
    posts: int
    members: int
    deleted_posts: int
    applied: int
    lag: int
    model_version: str
    backend: str = Field(description="kNN backend: flat, ivf, hnsw or torch")
    start: str = Field(
        description="how the index started: restored (from a snapshot) or the reason it "
        "replayed its topics (no_snapshot, offsets_out_of_retention, ...)"
    )
    freshness_seconds: dict[str, dict[str, float]] = Field(
        description="by entity: count, p50 and p99 of the seconds from the event that caused "
        "each recent live update (creation, edit, engagement, profile change) to visible"
    )
    history_members: int = Field(description="members with engagement history held")
    history_steps: int = Field(description="engagements held over all members")
    ranker_version: str | None = Field(description="the loaded GR checkpoint, if any")
    ranker_note: str | None = Field(description="why no GR ranker is loaded")


class RolloutRequest(BaseModel):
    """Start re-embedding the index with another embedding model."""

    model_config = ConfigDict(extra="forbid")

    model_path: Path = Field(description="a Hugging Face model directory on the service's host")
    ranker_checkpoint: Path | None = Field(
        None,
        description="a GR checkpoint trained on the new model's embeddings; default: keep the "
        "configured one, which only ranks if it matches (else feeds use retrieval order)",
    )


class RolloutEntities(BaseModel):
    """Progress of one entity kind."""

    target: int = Field(description="entities to embed with the new model")
    embedded: int
    skipped_no_text: int = Field(
        description="entities left out: their newest update carries no prompt text"
    )


class RolloutStatusBody(BaseModel):
    """The current or last model rollout of this process."""

    state: Literal["idle", "loading", "building", "catching_up", "switched", "failed"]
    model_path: str | None = None
    model_version: str | None = Field(None, description="the model rolled out (once loaded)")
    serving_model_version: str = Field(description="the model queries use right now")
    entities: dict[str, RolloutEntities] = Field(default_factory=dict)
    deleted_posts: int = 0
    invalid_records: int = 0
    seconds: float = 0.0
    error: str | None = None
    ranker_version: str | None = Field(None, description="the GR serving now, if any")
    ranker_note: str | None = Field(None, description="why feeds are in retrieval order")
