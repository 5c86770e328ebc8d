"""Request and response bodies of the query API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from schemas import AttrValue
from schemas.fields import EntityId


class FeedItem(BaseModel):
    """One retrieved post."""

    post_id: str
    score: float = Field(description="cosine similarity between query and post")
    author_id: str | None = None
    format: str | None = None
    created_at_ms: int | None = None


class FeedResponse(BaseModel):
    """A member's feed: posts nearest the member's vector, their own posts excluded."""

    member_id: str
    items: list[FeedItem]
    ranking: Literal["retrieval"] = "retrieval"
    model_version: str


class RetrieveRequest(BaseModel):
    """Retrieve by a member's vector or by free text; exactly one of the two."""

    member_id: EntityId | None = None
    text: str | None = Field(None, min_length=1)
    k: int = Field(10, ge=1)
    exclude_own_posts: bool = Field(True, description="with member_id: skip their own posts")

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
    freshness_seconds: dict[str, dict[str, float]]
