"""Post-side logic of the prompt processor: features, percentiles, deletes, re-embeds.

Plain functions over immutable ``PostState`` values; the Faust agent keeps them in a table
keyed by post_id and publishes what these functions return.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from processors.prompts import PromptLibrary
from processors.reembed import ReembedPolicy, Suppression, Trigger, post_decision
from schemas import AttrValue, Engagement, MemberEngagement, PostCreated, PostDeleted, PromptRequest


class PostState(BaseModel):
    """What the processor remembers about one post (a Faust table value)."""

    model_config = ConfigDict(frozen=True)

    post_id: str
    version: int = 0
    """Bumped on every change that is published downstream."""
    deleted: bool = False
    post: PostCreated | None = None
    prompted_percentiles: dict[str, int] = Field(default_factory=dict)
    """The percentiles in the last published prompt (what re-embedding compares against)."""
    last_prompt_ms: int = 0


@dataclass(frozen=True)
class PostDecision:
    """The post's new state, the prompt request to publish (if any), and why."""

    state: PostState
    prompt: PromptRequest | None
    reason: Trigger | Suppression


def on_post_created(
    state: PostState | None,
    event: PostCreated,
    percentiles: Mapping[str, int],
    library: PromptLibrary,
    now_ms: int,
    record_time_ms: int | None = None,
) -> PostDecision:
    """A new post or an edit: publish a prompt, unless the post was deleted (it never returns).

    The prompt's event time is `revision_time_ms` (``record_time_ms``: the Kafka record
    timestamp, if the caller knows it)."""
    current = state or PostState(post_id=event.post_id)
    if current.deleted:
        return PostDecision(current, None, "post_deleted")
    edit = current.post is not None
    reason: Trigger = "edited" if edit else "created"
    updated = current.model_copy(update={"post": event})
    event_time_ms = revision_time_ms(event, edit, record_time_ms)
    return _prompted(updated, percentiles, library, event_time_ms, now_ms, reason)


def revision_time_ms(event: PostCreated, edit: bool, record_time_ms: int | None = None) -> int:
    """When the revision in ``event`` was made: what the freshness of its prompt counts from.

    ``edited_at_ms`` when the producer sent it; ``created_at_ms`` for a first creation. An
    edit from a producer that predates ``edited_at_ms`` falls back to the Kafka record
    timestamp (``record_time_ms``, not before the creation) when known, else to
    ``created_at_ms``: then the freshness of that update is the post's age, an upper bound
    on the delay rather than a made-up lower one.

    Example::

        revision_time_ms(post, edit=True)  # post.edited_at_ms or post.created_at_ms
    """
    if event.edited_at_ms is not None:
        return event.edited_at_ms
    if edit and record_time_ms is not None:
        return max(record_time_ms, event.created_at_ms)
    return event.created_at_ms


def on_counts_changed(
    state: PostState | None,
    percentiles: Mapping[str, int],
    library: PromptLibrary,
    policy: ReembedPolicy,
    event_time_ms: int,
    now_ms: int,
) -> PostDecision | None:
    """Re-embed when a percentile bucket moved far enough, not too soon after the last time.

    None when there is nothing to decide (an engagement on a post not created yet)."""
    if state is None or state.post is None:
        return None
    if state.deleted:
        return PostDecision(state, None, "post_deleted")
    verdict = post_decision(
        policy, state.prompted_percentiles, percentiles, state.last_prompt_ms, now_ms
    )
    if verdict != "bucket_moved":
        return PostDecision(state, None, verdict)
    return _prompted(state, percentiles, library, event_time_ms, now_ms, "bucket_moved")


def on_post_deleted(
    state: PostState | None, event: PostDeleted, library: PromptLibrary, now_ms: int
) -> PostDecision:
    """Remember the delete and publish a delete request (once; repeats publish nothing)."""
    current = state or PostState(post_id=event.post_id)
    if current.deleted:
        return PostDecision(current, None, "post_deleted")
    new = current.model_copy(update={"version": current.version + 1, "deleted": True})
    prompt = PromptRequest(
        entity="post",
        entity_id=event.post_id,
        op="delete",
        version=new.version,
        prompt_version=library.post_version,
        event_time_ms=event.deleted_at_ms,
        prompted_at_ms=now_ms,
    )
    return PostDecision(new, prompt, "deleted")


def enrich_engagement(
    state: PostState | None, event: Engagement, library: PromptLibrary
) -> MemberEngagement:
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
        post_summary=library.summary(post) if post else None,
    )


def post_attrs(post: PostCreated) -> dict[str, AttrValue]:
    """The post features the index filters on."""
    return {
        "author_id": post.author_id,
        "format": post.format,
        "language": post.language,
        "created_at_ms": post.created_at_ms,
    }


def _prompted(
    state: PostState,
    percentiles: Mapping[str, int],
    library: PromptLibrary,
    event_time_ms: int,
    now_ms: int,
    reason: Trigger,
) -> PostDecision:
    assert state.post is not None
    new = state.model_copy(
        update={
            "version": state.version + 1,
            "prompted_percentiles": dict(percentiles),
            "last_prompt_ms": now_ms,
        }
    )
    prompt = PromptRequest(
        entity="post",
        entity_id=state.post_id,
        version=new.version,
        text=library.render_post(state.post, percentiles),
        prompt_version=library.post_version,
        attrs=post_attrs(state.post),
        event_time_ms=event_time_ms,
        prompted_at_ms=now_ms,
    )
    return PostDecision(new, prompt, reason)
