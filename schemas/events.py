"""Events that producers publish (the wire contract in DESIGN.md).

JSON, UTF-8, epoch-millisecond times. Unknown extra fields are ignored so producers can add
optional fields before consumers know them; renaming or retyping a field needs a new
``schema_version``.

Example::

    PostCreated.model_validate_json(b'{"schema_version": 1, "post_id": "p1", ...}')
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.fields import EntityId, EpochMs, Label, Text

SCHEMA_VERSION = 1

PostFormat = Literal["text", "article", "image", "video", "document", "poll"]
Action = Literal["impression", "click", "skip", "long_dwell", "like", "comment", "share"]


class WireModel(BaseModel):
    """Base for records on the wire: immutable, extra fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class PostCreated(WireModel):
    """A new post, or a new revision of an existing post (same ``post_id``: an edit).

    An edit repeats the post's ``created_at_ms`` and gives its own time in ``edited_at_ms``,
    which the index's freshness counts from (without it, from ``created_at_ms``).
    """

    schema_version: Literal[1]
    post_id: EntityId
    author_id: EntityId
    created_at_ms: EpochMs
    edited_at_ms: EpochMs | None = Field(
        None,
        description="when this revision was made, for an edit (same post_id again); not "
        "before created_at_ms. Absent: a first creation, or a producer that predates it",
    )
    format: PostFormat
    text: Text
    author_headline: Label | None = None
    author_company: Label | None = None
    industry: Label | None = None
    language: Label | None = None
    author_followers: int | None = Field(None, ge=0)

    @field_validator("edited_at_ms")
    @classmethod
    def _edited_after_created(cls, value: int | None, info: ValidationInfo) -> int | None:
        created = info.data.get("created_at_ms")
        if value is not None and created is not None and value < created:
            raise ValueError(f"must not be before created_at_ms {created}, got {value}")
        return value


class PostDeleted(WireModel):
    """A post was removed; it must disappear from the index and never return."""

    schema_version: Literal[1]
    post_id: EntityId
    deleted_at_ms: EpochMs


class Engagement(WireModel):
    """One member action on one post. Keyed by ``post_id`` on the wire."""

    schema_version: Literal[1]
    member_id: EntityId
    post_id: EntityId
    action: Action
    ts_ms: EpochMs
    dwell_ms: int | None = Field(None, ge=0)
    device: Label | None = None


class Position(WireModel):
    """A job in a member's work history; ``end_ms`` is None for the current one."""

    title: Label
    company: Label | None = None
    start_ms: EpochMs | None = None
    end_ms: EpochMs | None = None


class Education(WireModel):
    """A school entry in a member's profile."""

    school: Label
    degree: Label | None = None
    field: Label | None = None


class MemberProfile(WireModel):
    """The latest profile of a member (compacted topic: the newest per member wins)."""

    schema_version: Literal[1]
    member_id: EntityId
    updated_at_ms: EpochMs
    headline: Label | None = None
    title: Label | None = None
    company: Label | None = None
    industry: Label | None = None
    skills: list[Label] = Field(default_factory=list, max_length=200)
    positions: list[Position] = Field(default_factory=list, max_length=100)
    education: list[Education] = Field(default_factory=list, max_length=50)
