"""Request and response bodies of the query API."""

from __future__ import annotations

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


class FeedResponse(BaseModel):
    """A member's feed: posts nearest the member's vector, their own posts excluded."""

    member_id: str
    items: list[FeedItem]
    ranking: Literal["retrieval"] = "retrieval"
    model_version: str


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
    event_time_ms: int
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
    freshness_seconds: dict[str, dict[str, float]]
