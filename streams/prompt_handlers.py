"""What the prompt processor does with each record, free of Faust so it is unit-testable.

Two sides, each owning a table keyed like its input topics:

* post side (``posts.created``, ``posts.deleted``, ``engagements``; keyed by post_id): keeps
  post features, publishes post prompts and deletes, and forwards every engagement, joined
  with its post's summary, to ``engagements.by-member`` keyed by member_id — the repartition
  step that gives the member side its input;
* member side (``members.profile``, ``engagements.by-member``; keyed by member_id): keeps
  profile and positive history, publishes member prompts.

A record that fails validation becomes a dead letter; any other error propagates (a bug must
stop the worker rather than lose data silently). Tables are plain mutable mappings of JSON
dicts, which is what Faust tables are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

from processors import member_state, post_state
from schemas import (
    Engagement,
    InvalidRecord,
    MemberEngagement,
    MemberProfile,
    PostCreated,
    PostDeleted,
    PromptRequest,
    decode,
    encode,
)
from streams.dlq import dead_letter, failure_reason
from streams.metrics import PromptMetrics
from streams.records import Incoming, Outgoing
from streams.settings import KafkaSettings
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    PROMPTS_MEMBERS,
    PROMPTS_POSTS,
)

Table = MutableMapping[str, Any]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, now."""
    return int(time.time() * 1000)


class PromptHandlers:
    """Turns consumed records into table updates and records to produce."""

    def __init__(
        self, kafka: KafkaSettings, metrics: PromptMetrics, clock: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.clock = clock

    def on_post_side(self, record: Incoming, posts: Table) -> list[Outgoing]:
        """Handle a record of ``posts.created``, ``posts.deleted`` or ``engagements``."""
        return self._guarded(record, lambda name: self._post_side(name, record, posts))

    def on_member_side(self, record: Incoming, members: Table) -> list[Outgoing]:
        """Handle a record of ``members.profile`` or ``engagements.by-member``."""
        return self._guarded(record, lambda name: self._member_side(name, record, members))

    def _guarded(self, record: Incoming, handle: Callable[[str], list[Outgoing]]) -> list[Outgoing]:
        name = self.kafka.catalog_name(record.topic)
        try:
            out = handle(name)
        except InvalidRecord as error:
            self.metrics.events.labels(name, "dead_lettered").inc()
            self.metrics.dead_letters.labels(name, failure_reason(error)).inc()
            return [dead_letter(record, error)]
        self.metrics.events.labels(name, "processed").inc()
        return out

    def _post_side(self, name: str, record: Incoming, posts: Table) -> list[Outgoing]:
        now = self.clock()
        if name == POSTS_CREATED.name:
            created = decode(PostCreated, record.value, key=record.key, key_field="post_id")
            decision = post_state.on_post_created(_post(posts, created.post_id), created, now)
        elif name == POSTS_DELETED.name:
            deleted = decode(PostDeleted, record.value, key=record.key, key_field="post_id")
            decision = post_state.on_post_deleted(_post(posts, deleted.post_id), deleted, now)
        elif name == ENGAGEMENTS.name:
            engagement = decode(Engagement, record.value, key=record.key, key_field="post_id")
            joined = post_state.enrich_engagement(_post(posts, engagement.post_id), engagement)
            topic = self.kafka.topic(ENGAGEMENTS_BY_MEMBER.name)
            return [Outgoing(topic, joined.member_id.encode(), encode(joined))]
        else:
            raise ValueError(f"post side got a record of unexpected topic {record.topic!r}")
        posts[decision.state.post_id] = decision.state.model_dump(mode="json")
        return self._prompt(decision.prompt)

    def _member_side(self, name: str, record: Incoming, members: Table) -> list[Outgoing]:
        now = self.clock()
        if name == MEMBERS_PROFILE.name:
            profile = decode(MemberProfile, record.value, key=record.key, key_field="member_id")
            state = _member(members, profile.member_id)
            decision = member_state.on_profile(state, profile, now)
        elif name == ENGAGEMENTS_BY_MEMBER.name:
            joined = decode(MemberEngagement, record.value, key=record.key, key_field="member_id")
            decision = member_state.on_engagement(_member(members, joined.member_id), joined, now)
        else:
            raise ValueError(f"member side got a record of unexpected topic {record.topic!r}")
        if decision.prompt is not None:  # unchanged states are not rewritten to the changelog
            members[decision.state.member_id] = decision.state.model_dump(mode="json")
        return self._prompt(decision.prompt)

    def _prompt(self, prompt: PromptRequest | None) -> list[Outgoing]:
        if prompt is None:
            return []
        self.metrics.prompts.labels(prompt.entity, prompt.op).inc()
        spec = PROMPTS_POSTS if prompt.entity == "post" else PROMPTS_MEMBERS
        return [Outgoing(self.kafka.topic(spec.name), prompt.entity_id.encode(), encode(prompt))]


def _post(posts: Table, post_id: str) -> post_state.PostState | None:
    stored = posts.get(post_id)
    return post_state.PostState.model_validate(stored) if stored is not None else None


def _member(members: Table, member_id: str) -> member_state.MemberState | None:
    stored = members.get(member_id)
    return member_state.MemberState.model_validate(stored) if stored is not None else None
