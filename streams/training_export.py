"""Export a dual-encoder training set (``schemas.training_set``) from the pipeline's topics.

Reads ``engagements``, ``prompts.posts`` and ``prompts.members`` (prefixed) the way
``streams.engagement_export`` reads engagements: a bounded read of every partition from its
beginning up to the end offset observed at start (all three topics are observed before any is
read), with ``assign`` and no consumer group or commits. Invalid records are skipped and
counted per topic.

The prompt processor already rendered every prompt; each ``PromptRequest`` carries its text
and the time of the event that caused it, so each example uses:

- the post prompt with the latest event time at or before the engagement;
- the member prompt with the latest event time strictly before it (a member prompt caused by
  the engagement itself lists the post being predicted);

falling back to the entity's earliest prompt when none precedes. Posts with a delete request
are left out everywhere. ``posts.parquet`` takes ``author_id`` and ``created_at_ms`` from the
post prompts' attributes and popularity from the engagements. Everything is held in memory
(the texts of every prompt version) before the directory is written.

Example::

    export_training_set(KafkaSettings(), Path("train"))
    # TrainingExportResult(examples=2402, eval_members=158, posts=1000, ...)
"""

from __future__ import annotations

import logging
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import Consumer, Message

from processors.training_rows import (
    BuildSpec,
    EngagementRow,
    PostInfo,
    assemble_training_set,
    split_time,
)
from schemas import Entity, InvalidRecord, PromptRequest, decode
from schemas.training_set import (
    write_training_set,
)
from streams.engagement_export import _Reader, _watermarks
from streams.kafka_clients import confluent_consumer
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS, PROMPTS_MEMBERS, PROMPTS_POSTS

log = logging.getLogger(__name__)

_LOGGED_INVALID = 5
_NAMES = (ENGAGEMENTS.name, PROMPTS_POSTS.name, PROMPTS_MEMBERS.name)


class TrainingExportResult(NamedTuple):
    """What ``export_training_set`` wrote, and what it read."""

    examples: int
    """Rows of examples.parquet."""
    eval_members: int
    """Rows of eval.parquet."""
    posts: int
    """Rows of posts.parquet."""
    split_ms: int
    """Engagements at or after this time are the eval period."""
    counts: dict[str, int]
    """The manifest's counts: every table, engagements, and what was left out for lack of a
    prompt (``examples_skipped``, ``eval_skipped``, ``posts_without_prompt``)."""
    skipped: dict[str, int]
    """Catalog topic → records that failed to decode (or carried the wrong entity)."""
    end_offsets: dict[str, dict[int, int]]
    """Catalog topic → partition → end offset at start: the export covers offsets below it."""


class PromptTimeline:
    """Every prompt of one entity kind, by entity and event time, answering "as of when"."""

    def __init__(self) -> None:
        self.deleted: set[str] = set()
        self._items: dict[str, list[tuple[int, int, PromptRequest]]] = defaultdict(list)
        self._times: dict[str, list[int]] = {}

    def add(self, request: PromptRequest) -> None:
        """Remember an upsert's text, or that the entity was deleted."""
        if request.op == "delete":
            self.deleted.add(request.entity_id)
        else:
            self._items[request.entity_id].append((request.event_time_ms, request.version, request))
            self._times.pop(request.entity_id, None)

    def ids(self) -> list[str]:
        """Entities with at least one upsert and no delete, sorted."""
        return sorted(e for e in self._items if e not in self.deleted)

    def latest(self, entity_id: str) -> PromptRequest | None:
        """The newest upsert of an entity (by event time, then version)."""
        items = self._sorted(entity_id)
        return items[-1][2] if items else None

    def text(self, entity_id: str, at_ms: int, *, strict: bool = False) -> str | None:
        """The text of the latest prompt with event time <= ``at_ms`` (< with ``strict``),
        else of the earliest; None for a deleted or unknown entity."""
        items = self._sorted(entity_id)
        if not items or entity_id in self.deleted:
            return None
        times = self._times[entity_id]
        index = (bisect_left if strict else bisect_right)(times, at_ms)
        return items[max(index - 1, 0)][2].text

    def versions(self) -> str:
        """The distinct prompt versions seen, comma-separated."""
        found = {r.prompt_version for items in self._items.values() for _, _, r in items}
        return ",".join(sorted(found))

    def _sorted(self, entity_id: str) -> list[tuple[int, int, PromptRequest]]:
        items = self._items.get(entity_id, [])
        if entity_id not in self._times:
            items.sort(key=lambda item: item[:2])
            self._times[entity_id] = [t for t, _, _ in items]
        return items


class _PromptReader(_Reader):
    """``engagement_export._Reader`` with PromptRequest decoding into a timeline."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        watermarks: dict[int, tuple[int, int]],
        entity: Entity,
    ) -> None:
        super().__init__(consumer, topic, watermarks)
        self.entity: Entity = entity
        self.timeline = PromptTimeline()

    def _decode(self, message: Message, partition: int, offset: int) -> None:
        try:
            request = decode(
                PromptRequest, message.value(), key=message.key(), key_field="entity_id"
            )
            if request.entity != self.entity:
                raise InvalidRecord("schema_invalid", f"entity {request.entity!r} on this topic")
            if request.op == "upsert" and not request.text:
                raise InvalidRecord("schema_invalid", "an upsert without text")
        except InvalidRecord as error:
            self.skipped += 1
            if self.skipped <= _LOGGED_INVALID:
                log.warning(
                    'skipped invalid prompt partition="%s[%d]" offset="%d" reason=%s: %s',
                    self.topic, partition, offset, error.reason, error,
                )  # fmt: skip
            return
        self.timeline.add(request)

    def _flush(self) -> None:
        """Nothing to flush: requests go straight into the timeline."""


def export_training_set(
    kafka: KafkaSettings,
    out_dir: Path,
    *,
    holdout_fraction: float = 0.2,
    max_hard_negatives: int = 4,
    timeout_s: float = 60.0,
) -> TrainingExportResult:
    """Read the three topics up to their end offsets at start and write a training set.

    ``out_dir``'s files are each replaced atomically; on an error before writing it is left
    as it was.

    Raises:
        TopicError: a topic does not exist.
        ExportError: offsets could not be read, or the topics were not read to their end
            offsets within ``timeout_s``.
        TrainingSetError: no valid engagements, or ``holdout_fraction`` not in [0, 1).
    """
    read = _read_topics(kafka, timeout_s)
    table = read.engagements.sorted_table()
    columns = [table.column(c).to_pylist() for c in ("member_id", "post_id", "action", "ts_ms")]
    rows = [EngagementRow(*row) for row in zip(*columns, strict=True)]
    posts, members = read.posts.timeline, read.members.timeline
    spec = BuildSpec(
        split_ms=split_time((row.ts_ms for row in rows), holdout_fraction),
        holdout_fraction=holdout_fraction,
        source=f"kafka(bootstrap={kafka.bootstrap_servers}, prefix={kafka.topic_prefix!r})",
        max_hard_negatives=max_hard_negatives,
        prompt_versions={"post": posts.versions(), "member": members.versions()},
    )
    training_set = assemble_training_set(
        rows,
        _post_infos(posts),
        lambda member, ts, _target: members.text(member, ts, strict=True),
        posts.text,
        spec,
    )
    write_training_set(out_dir, training_set)
    counts = training_set.manifest.counts
    return TrainingExportResult(
        examples=counts["examples"],
        eval_members=counts["eval"],
        posts=counts["posts"],
        split_ms=spec.split_ms,
        counts=dict(counts),
        skipped={name: reader.skipped for name, reader in read.readers()},
        end_offsets={
            name: {p: high for p, (_, high) in read.watermarks[name].items()} for name in _NAMES
        },
    )


class _Topics(NamedTuple):
    engagements: _Reader
    posts: _PromptReader
    members: _PromptReader
    watermarks: dict[str, dict[int, tuple[int, int]]]
    """Catalog topic → partition → (low, high) at start."""

    def readers(self) -> list[tuple[str, _Reader]]:
        return list(zip(_NAMES, (self.engagements, self.posts, self.members), strict=True))


def _read_topics(kafka: KafkaSettings, timeout_s: float) -> _Topics:
    """The three topics read up to the end offsets observed (for all of them) at start."""
    deadline = time.monotonic() + timeout_s
    consumer = confluent_consumer(
        kafka, f"feedline-export-{uuid.uuid4().hex}", **{"enable.partition.eof": True}
    )
    try:
        marks = {name: _watermarks(consumer, kafka.topic(name), deadline) for name in _NAMES}
        topics = _Topics(
            _Reader(consumer, kafka.topic(ENGAGEMENTS.name), marks[ENGAGEMENTS.name]),
            _PromptReader(
                consumer, kafka.topic(PROMPTS_POSTS.name), marks[PROMPTS_POSTS.name], "post"
            ),
            _PromptReader(
                consumer, kafka.topic(PROMPTS_MEMBERS.name), marks[PROMPTS_MEMBERS.name], "member"
            ),
            marks,
        )
        for _, reader in topics.readers():
            reader.read_until(deadline)
    finally:
        consumer.close()
    return topics


def _post_infos(timeline: PromptTimeline) -> list[PostInfo]:
    """Author and creation time of every live post, from its newest prompt's attributes."""
    infos = []
    for post_id in timeline.ids():
        latest = timeline.latest(post_id)
        attrs = latest.attrs if latest is not None else {}
        author, created = attrs.get("author_id"), attrs.get("created_at_ms")
        infos.append(
            PostInfo(
                post_id,
                author if isinstance(author, str) else None,
                created if isinstance(created, int) and not isinstance(created, bool) else None,
            )
        )
    return infos
