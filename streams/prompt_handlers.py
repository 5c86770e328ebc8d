"""What the prompt processor does with each record, free of Faust so it is unit-testable.

Two sides, each owning tables keyed like its input topics:

* post side (``posts.created``, ``posts.deleted``, ``engagements``; keyed by post_id): keeps
  post features and counts, per-partition percentile sketches, publishes post prompts when the
  re-embedding policy says so, and forwards every engagement, joined with its post's summary,
  to ``engagements.by-member`` keyed by member_id: the repartition that feeds the member side;
* member side (``members.profile``, ``engagements.by-member``; keyed by member_id): keeps
  profile, positive history and hard negatives, publishes debounced member prompts. Tick
  records (header ``feedline.tick``) that the worker's timer writes to each partition of
  ``engagements.by-member`` flush the changes the debounce held back. The worker sends the
  forwarded engagements in bundles, one record per partition per post-side batch
  (``streams.member_bundles``); the member side splits them and handles each as a record.

Every prompt carries the time of the event that caused it (``event_time_ms``, which the
index's freshness counts from): a creation's ``created_at_ms``, an edit's ``edited_at_ms``
(see ``post_state.revision_time_ms`` for edits without it), the engagement's ``ts_ms`` for a
re-embed on a bucket move or a member's new positive engagement, ``deleted_at_ms`` for a
delete, the profile's ``updated_at_ms``, and for a member prompt that a tick flushes the
oldest change the debounce held (``member_state.on_change`` says why a prompt published on a
change carries that change's time).

A record that fails validation becomes a dead letter; any other error propagates (a bug must
stop the worker rather than lose data silently). Tables are mutable mappings of JSON dicts,
which is what Faust tables are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

from processors import member_state, post_state
from processors.feature_sketches import ACTION_COUNTERS, PartitionSketches, PostCounts
from processors.member_state import MemberHistory, MemberNegatives, MemberState
from processors.pending_members import PendingMembers
from processors.post_state import PostDecision, PostState
from processors.prompts import PromptLibrary
from processors.reembed import ReembedPolicy, Trigger
from schemas import (
    Engagement,
    Entity,
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
from streams.member_bundles import is_bundle, unbundle
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
M = TypeVar("M", bound=BaseModel)
TICK_HEADER = "feedline.tick"
TRIGGERS = frozenset(
    {"created", "edited", "deleted", "bucket_moved", "profile", "engagement", "debounce_flush"}
)


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, now."""
    return int(time.time() * 1000)


def _table() -> Table:
    return {}


@dataclass(frozen=True)
class PromptTables:
    """The processor's state; Faust tables in the worker, dicts in tests and benchmarks."""

    posts: Table = field(default_factory=_table)
    post_counts: Table = field(default_factory=_table)
    sketches: Table = field(default_factory=_table)
    members: Table = field(default_factory=_table)
    member_history: Table = field(default_factory=_table)
    member_negatives: Table = field(default_factory=_table)
    member_pending: Table = field(default_factory=_table)
    """member_id → partition, for members with a change held back by the debounce."""


class PromptHandlers:
    """Turns consumed records into table updates and records to produce."""

    def __init__(
        self,
        kafka: KafkaSettings,
        metrics: PromptMetrics,
        library: PromptLibrary,
        policy: ReembedPolicy,
        sketches: PartitionSketches,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.library = library
        self.policy = policy
        self.sketches = sketches
        self.clock = clock
        self.pending = PendingMembers()
        """Mirror of ``member_pending`` that ticks read; the worker forgets it on rebalance."""

    def on_post_side(self, record: Incoming, tables: PromptTables) -> list[Outgoing]:
        """Handle a record of ``posts.created``, ``posts.deleted`` or ``engagements``."""
        return self._guarded(record, lambda name: self._post_side(name, record, tables))

    def on_member_side(self, record: Incoming, tables: PromptTables) -> list[Outgoing]:
        """Handle a record of ``members.profile`` or ``engagements.by-member``, or a tick."""
        if any(name == TICK_HEADER for name, _ in record.headers):
            return self._flush_pending(record.partition, tables)
        if is_bundle(record):
            return self._member_bundle(record, tables)
        return self._guarded(record, lambda name: self._member_side(name, record, tables))

    def _member_bundle(self, bundle: Incoming, tables: PromptTables) -> list[Outgoing]:
        """Each record of a bundle (``streams.member_bundles``) in order; a bundle that cannot
        be split is one dead letter."""
        try:
            records = unbundle(bundle)
        except InvalidRecord as error:
            return self._dead_letter(bundle, error)
        out: list[Outgoing] = []
        for record in records:
            out += self._guarded(record, partial(self._member_side, record=record, tables=tables))
        return out

    def tick(self, partition: int) -> Outgoing:
        """The tick record the worker's timer sends to one partition of the member side."""
        topic = self.kafka.topic(ENGAGEMENTS_BY_MEMBER.name)
        return Outgoing(topic, b"__tick__", b"{}", [(TICK_HEADER, b"1")], partition)

    def _guarded(self, record: Incoming, handle: Callable[[str], list[Outgoing]]) -> list[Outgoing]:
        name = self.kafka.catalog_name(record.topic)
        try:
            out = handle(name)
        except InvalidRecord as error:
            return self._dead_letter(record, error)
        self.metrics.events.labels(name, "processed").inc()
        return out

    def _dead_letter(self, record: Incoming, error: InvalidRecord) -> list[Outgoing]:
        name = self.kafka.catalog_name(record.topic)
        self.metrics.events.labels(name, "dead_lettered").inc()
        self.metrics.dead_letters.labels(name, failure_reason(error)).inc()
        return [dead_letter(record, error)]

    # --- post side ------------------------------------------------------------------------

    def _post_side(self, name: str, record: Incoming, tables: PromptTables) -> list[Outgoing]:
        if name == POSTS_CREATED.name:
            created = decode(PostCreated, record.value, key=record.key, key_field="post_id")
            return self._post_created(created, record, tables)
        if name == POSTS_DELETED.name:
            deleted = decode(PostDeleted, record.value, key=record.key, key_field="post_id")
            state = _load(PostState, tables.posts, deleted.post_id)
            decision = post_state.on_post_deleted(state, deleted, self.library, self.clock())
            return self._post_decided(decision, tables)
        if name == ENGAGEMENTS.name:
            engagement = decode(Engagement, record.value, key=record.key, key_field="post_id")
            return self._engagement(engagement, record.partition, tables)
        raise ValueError(f"post side got a record of unexpected topic {record.topic!r}")

    def _post_created(
        self, event: PostCreated, record: Incoming, tables: PromptTables
    ) -> list[Outgoing]:
        counts = _load(PostCounts, tables.post_counts, event.post_id) or PostCounts(
            partition=record.partition
        )
        counts = counts.model_copy(update={"followers": event.author_followers})
        percentiles = self._store_counts(event.post_id, counts, tables)
        state = _load(PostState, tables.posts, event.post_id)
        decision = post_state.on_post_created(
            state, event, percentiles, self.library, self.clock(), record.timestamp_ms
        )
        return self._post_decided(decision, tables)

    def _engagement(
        self, event: Engagement, partition: int, tables: PromptTables
    ) -> list[Outgoing]:
        state = _load(PostState, tables.posts, event.post_id)
        out: list[Outgoing] = []
        counter = ACTION_COUNTERS.get(event.action)
        if counter is not None:
            counts = _load(PostCounts, tables.post_counts, event.post_id) or PostCounts(
                partition=partition
            )
            counts = counts.model_copy(update={counter: getattr(counts, counter) + 1})
            percentiles = self._store_counts(event.post_id, counts, tables)
            decision = post_state.on_counts_changed(
                state, percentiles, self.library, self.policy, event.ts_ms, self.clock()
            )
            if decision is not None:
                out = self._post_decided(decision, tables)
        joined = post_state.enrich_engagement(state, event, self.library)
        topic = self.kafka.topic(ENGAGEMENTS_BY_MEMBER.name)
        return [*out, Outgoing(topic, joined.member_id.encode(), encode(joined))]

    def _store_counts(
        self, post_id: str, counts: PostCounts, tables: PromptTables
    ) -> dict[str, int]:
        tables.post_counts[post_id] = counts.model_dump(mode="json")
        self.sketches.note_change(tables.sketches, tables.post_counts, post_id, counts)
        return self.sketches.percentiles(tables.sketches, counts.partition, counts.values())

    def _post_decided(self, decision: PostDecision, tables: PromptTables) -> list[Outgoing]:
        self._count_decision("post", decision.reason)
        if decision.prompt is None:
            return []
        tables.posts[decision.state.post_id] = decision.state.model_dump(mode="json")
        return self._prompt(decision.prompt)

    # --- member side ----------------------------------------------------------------------

    def _member_side(self, name: str, record: Incoming, tables: PromptTables) -> list[Outgoing]:
        if name == MEMBERS_PROFILE.name:
            profile = decode(MemberProfile, record.value, key=record.key, key_field="member_id")
            return self._profile(profile, record.partition, tables)
        if name == ENGAGEMENTS_BY_MEMBER.name:
            joined = decode(MemberEngagement, record.value, key=record.key, key_field="member_id")
            return self._member_engagement(joined, record.partition, tables)
        raise ValueError(f"member side got a record of unexpected topic {record.topic!r}")

    def _profile(
        self, profile: MemberProfile, partition: int, tables: PromptTables
    ) -> list[Outgoing]:
        state = member_state.newer_profile(
            _load(MemberState, tables.members, profile.member_id), profile
        )
        if state is None:
            self._count_decision("member", "stale_profile")
            return []
        return self._member_changed(state, "profile", profile.updated_at_ms, partition, tables)

    def _member_engagement(
        self, event: MemberEngagement, partition: int, tables: PromptTables
    ) -> list[Outgoing]:
        history = _load(MemberHistory, tables.member_history, event.member_id) or MemberHistory()
        negatives = (
            _load(MemberNegatives, tables.member_negatives, event.member_id) or MemberNegatives()
        )
        if event.action in self.policy.positive_actions:
            summaries = self.library.config.history_in_prompt
            updated = member_state.add_positive(history, event, self.policy, summaries)
            if updated is None:
                return []
            tables.member_history[event.member_id] = updated.model_dump(mode="json")
            if (fewer := member_state.drop_negative(negatives, event.post_id)) is not None:
                tables.member_negatives[event.member_id] = fewer.model_dump(mode="json")
            state = _load(MemberState, tables.members, event.member_id) or MemberState(
                member_id=event.member_id
            )
            return self._member_changed(
                state, "engagement", event.ts_ms, partition, tables, updated
            )
        if event.action == "impression":
            more = member_state.add_impression(negatives, history, event, self.policy)
            if more is not None:
                tables.member_negatives[event.member_id] = more.model_dump(mode="json")
        return []

    def _member_changed(
        self,
        state: MemberState,
        reason: Trigger,
        event_time_ms: int,
        partition: int,
        tables: PromptTables,
        history: MemberHistory | None = None,
    ) -> list[Outgoing]:
        """``history``: the member's, when the caller has it already (else it is loaded)."""
        if history is None:
            history = (
                _load(MemberHistory, tables.member_history, state.member_id) or MemberHistory()
            )
        decision = member_state.on_change(
            state,
            history,
            reason,
            event_time_ms,
            self.library,
            self.policy,
            self.clock(),
        )
        self._count_decision("member", decision.reason)
        tables.members[state.member_id] = decision.state.model_dump(mode="json")
        if decision.prompt is None:
            if tables.member_pending.get(state.member_id) != partition:
                tables.member_pending[state.member_id] = partition
                self.pending.mark(state.member_id, partition)
            return []
        if tables.member_pending.pop(state.member_id, None) is not None:
            self.pending.clear(state.member_id)
        return self._prompt(decision.prompt)

    def _flush_pending(self, partition: int, tables: PromptTables) -> list[Outgoing]:
        out: list[Outgoing] = []
        for member_id in self.pending.due(tables.member_pending, partition):
            state = _load(MemberState, tables.members, member_id)
            history = _load(MemberHistory, tables.member_history, member_id) or MemberHistory()
            if state is None:
                continue
            decision = member_state.flush(state, history, self.library, self.policy, self.clock())
            if decision is None or decision.prompt is None:
                continue
            self._count_decision("member", decision.reason)
            tables.members[member_id] = decision.state.model_dump(mode="json")
            del tables.member_pending[member_id]
            self.pending.clear(member_id)
            out.extend(self._prompt(decision.prompt))
        return out

    # --- shared ---------------------------------------------------------------------------

    def _count_decision(self, entity: Entity, reason: str) -> None:
        decision = "triggered" if reason in TRIGGERS else "suppressed"
        self.metrics.reembeds.labels(entity, decision, reason).inc()

    def _prompt(self, prompt: PromptRequest) -> list[Outgoing]:
        self.metrics.prompts.labels(prompt.entity, prompt.op).inc()
        spec = PROMPTS_POSTS if prompt.entity == "post" else PROMPTS_MEMBERS
        return [Outgoing(self.kafka.topic(spec.name), prompt.entity_id.encode(), encode(prompt))]


def _load(model: type[M], table: Table, key: str) -> M | None:
    stored = table.get(key)
    return model.model_validate(stored) if stored is not None else None
