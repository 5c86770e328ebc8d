"""Builders for valid producer events in integration tests."""

from __future__ import annotations

import time
from typing import Any

from schemas import Engagement, MemberProfile, PostCreated, PostDeleted


def now_ms() -> int:
    """Wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


def post(post_id: str, text: str, author_id: str = "author1", **extra: Any) -> PostCreated:
    """A text post created now."""
    fields = {"schema_version": 1, "post_id": post_id, "author_id": author_id,
              "created_at_ms": now_ms(), "format": "text", "text": text, **extra}  # fmt: skip
    return PostCreated.model_validate(fields)


def delete(post_id: str) -> PostDeleted:
    """A delete of ``post_id``, now."""
    return PostDeleted(schema_version=1, post_id=post_id, deleted_at_ms=now_ms())


def profile(member_id: str, headline: str, skills: list[str]) -> MemberProfile:
    """A profile updated now."""
    return MemberProfile(schema_version=1, member_id=member_id, updated_at_ms=now_ms(),
                         headline=headline, skills=skills)  # fmt: skip


def engagement(member_id: str, post_id: str, action: str = "like") -> Engagement:
    """A member action on a post, now."""
    fields = {"schema_version": 1, "member_id": member_id, "post_id": post_id,
              "action": action, "ts_ms": now_ms()}  # fmt: skip
    return Engagement.model_validate(fields)
