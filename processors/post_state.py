"""Post-side logic of the prompt processor: post features, deletes, engagement enrichment.

Plain functions over an immutable ``PostState``; the Faust agent stores states in a table
keyed by ``post_id`` and publishes what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from processors.prompts import POST_PROMPT_VERSION, post_summary, render_post_prompt
from schemas import AttrValue, Engagement, MemberEngagement, PostCreated, PostDeleted, PromptRequest


class PostState(BaseModel):
    """What the processor remembers about one post (a Faust table value)."""

    model_config = ConfigDict(frozen=True)

    post_id: str
    version: int = 0
    """Bumped on every change that is published downstream."""
    deleted: bool = False
    post: PostCreated | None = None


@dataclass(frozen=True)
class PostDecision:
    """The post's new state and the prompt request to publish, if any."""

    state: PostState
    prompt: PromptRequest | None


def on_post_created(state: PostState | None, event: PostCreated, now_ms: int) -> PostDecision:
    """A new post or an edit: render and publish a prompt, unless the post was deleted.

    A deleted post never comes back: a create (or edit) arriving after its delete is dropped.
    """
    current = state or PostState(post_id=event.post_id)
    if current.deleted:
        return PostDecision(current, None)
    new = current.model_copy(update={"version": current.version + 1, "post": event})
    prompt = PromptRequest(
        entity="post",
        entity_id=event.post_id,
        version=new.version,
        text=render_post_prompt(event),
        prompt_version=POST_PROMPT_VERSION,
        attrs=post_attrs(event),
        event_time_ms=event.created_at_ms,
        prompted_at_ms=now_ms,
    )
    return PostDecision(new, prompt)


def on_post_deleted(state: PostState | None, event: PostDeleted, now_ms: int) -> PostDecision:
    """Remember the delete and publish a delete request (once; repeats publish nothing)."""
    current = state or PostState(post_id=event.post_id)
    if current.deleted:
        return PostDecision(current, None)
    new = current.model_copy(update={"version": current.version + 1, "deleted": True})
    prompt = PromptRequest(
        entity="post",
        entity_id=event.post_id,
        op="delete",
        version=new.version,
        prompt_version=POST_PROMPT_VERSION,
        event_time_ms=event.deleted_at_ms,
        prompted_at_ms=now_ms,
    )
    return PostDecision(new, prompt)


def enrich_engagement(state: PostState | None, event: Engagement) -> MemberEngagement:
    """Join an engagement with its post's summary so the member side needs no post lookup."""
    post = state.post if state is not None and not state.deleted else None
    return MemberEngagement(
        member_id=event.member_id,
        post_id=event.post_id,
        action=event.action,
        ts_ms=event.ts_ms,
        dwell_ms=event.dwell_ms,
        device=event.device,
        post_author_id=post.author_id if post else None,
        post_summary=post_summary(post) if post else None,
    )


def post_attrs(post: PostCreated) -> dict[str, AttrValue]:
    """The post features the index filters on."""
    return {
        "author_id": post.author_id,
        "format": post.format,
        "language": post.language,
        "created_at_ms": post.created_at_ms,
    }
