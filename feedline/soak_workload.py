"""The soak's seeded workload and the ground truth it keeps.

Events are new posts, edits (a ``PostCreated`` with an existing id, the post's creation time
and the edit's time in ``edited_at_ms``), deletes, an occasional edit of a deleted post (which
must never bring it back), engagements and member profiles.
Every post revision's text starts with a marker ``[<post_id>#<revision>]``, so the checker can
tell from a prompt which revision it was rendered from. The truth is updated only for events
the broker acknowledged (``delivered``), in publishing order.

Example::

    workload = SoakWorkload(seed=7, members=40)
    batch = workload.next_batch(10, now_ms=1_700_000_000_000)
    ...publish and flush the batch...
    workload.delivered(batch)
    workload.truth.live_posts()
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas import Engagement, MemberProfile, PostCreated, PostDeleted
from streams.producer import ProducerEvent

WORDS = [
    "kafka",
    "stream",
    "index",
    "vector",
    "feed",
    "member",
    "post",
    "engagement",
    "latency",
    "freshness",
    "partition",
    "offset",
    "replica",
    "broker",
    "consumer",
    "producer",
    "embedding",
    "cosine",
    "recall",
    "ranking",
    "transformer",
    "attention",
    "compaction",
    "rebalance",
    "transaction",
    "snapshot",
]
ACTIONS = ("impression", "impression", "click", "skip", "like", "comment", "share", "long_dwell")
WEIGHTS = {"post": 30, "edit": 14, "delete": 5, "edit_deleted": 1, "engage": 40, "profile": 10}


def marker(post_id: str, revision: int) -> str:
    """The text prefix of one revision of a post: ``[p00012#3]``."""
    return f"[{post_id}#{revision}]"


@dataclass
class SoakTruth:
    """What the index must end up with: each post's newest revision or its delete, and the
    members that have a profile."""

    revisions: dict[str, int] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=set)
    events: int = 0

    def live_posts(self) -> dict[str, int]:
        """``post_id -> newest revision`` of every post not deleted."""
        return {p: r for p, r in self.revisions.items() if p not in self.deleted}


class SoakWorkload:
    """Seeded events over a growing set of posts and a fixed set of members."""

    def __init__(self, seed: int, members: int, weights: Mapping[str, int] = WEIGHTS) -> None:
        unknown = set(weights) - set(WEIGHTS)
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}; kinds are {list(WEIGHTS)}")
        self.weights = dict(weights)
        self.rng = random.Random(seed)
        self.member_ids = [f"m{i:04d}" for i in range(members)]
        self.truth = SoakTruth()
        self._planned: dict[str, int] = {}  # revisions including events not yet delivered
        self._planned_deleted: set[str] = set()
        self._created_at: dict[str, int] = {}  # post_id -> created_at_ms of its first revision
        self._profiles = 0
        self._posts = 0

    def next_batch(self, size: int, now_ms: int) -> list[ProducerEvent]:
        """The next ``size`` events (a profile for every member comes first)."""
        batch: list[ProducerEvent] = []
        while len(batch) < size:
            if self._profiles < len(self.member_ids):
                batch.append(self._profile(self.member_ids[self._profiles], now_ms))
                continue
            kind = self.rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
            event = self._event(kind, now_ms)
            if event is not None:
                batch.append(event)
        return batch

    def delivered(self, batch: list[ProducerEvent]) -> None:
        """Fold acknowledged events into the truth, in order."""
        for event in batch:
            self.truth.events += 1
            if isinstance(event, PostCreated):
                revision = int(event.text.split("#", 1)[1].split("]", 1)[0])
                if event.post_id not in self.truth.deleted:
                    self.truth.revisions[event.post_id] = revision
            elif isinstance(event, PostDeleted):
                self.truth.deleted.add(event.post_id)
            elif isinstance(event, MemberProfile):
                self.truth.members.add(event.member_id)

    def _event(self, kind: str, now_ms: int) -> ProducerEvent | None:
        live = [p for p in self._planned if p not in self._planned_deleted]
        if kind == "post" or not live:
            self._posts += 1
            return self._revision(f"p{self._posts:06d}", now_ms)
        if kind == "edit":
            return self._revision(self.rng.choice(live), now_ms)
        if kind == "delete":
            post_id = self.rng.choice(live)
            self._planned_deleted.add(post_id)
            return PostDeleted(schema_version=1, post_id=post_id, deleted_at_ms=now_ms)
        if kind == "edit_deleted":
            gone = sorted(self._planned_deleted)
            return self._revision(self.rng.choice(gone), now_ms) if gone else None
        if kind == "engage":
            return Engagement(
                schema_version=1,
                member_id=self.rng.choice(self.member_ids),
                post_id=self.rng.choice(live),
                action=self.rng.choice(ACTIONS),  # type: ignore[arg-type]
                ts_ms=now_ms,
                device=self.rng.choice(("ios", "android", "web")),
            )
        return self._profile(self.rng.choice(self.member_ids), now_ms)

    def _revision(self, post_id: str, now_ms: int) -> PostCreated:
        """Revision 1 is the creation; later ones are edits that keep the creation time."""
        revision = self._planned.get(post_id, 0) + 1
        self._planned[post_id] = revision
        created_at_ms = self._created_at.setdefault(post_id, now_ms)
        # an edit is never before its creation, even after the wall clock stepped back
        edited_at_ms = max(now_ms, created_at_ms) if revision > 1 else None
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(8, 30)))
        return PostCreated(
            schema_version=1,
            post_id=post_id,
            author_id=f"a{self.rng.randrange(20):03d}",
            created_at_ms=created_at_ms,
            edited_at_ms=edited_at_ms,
            format=self.rng.choice(("text", "article", "image", "video")),
            text=f"{marker(post_id, revision)} {words}",
            author_followers=self.rng.randrange(10_000),
        )

    def _profile(self, member_id: str, now_ms: int) -> MemberProfile:
        self._profiles += 1
        skills = self.rng.sample(WORDS, 3)
        return MemberProfile(
            schema_version=1,
            member_id=member_id,
            updated_at_ms=now_ms + self._profiles,  # strictly newer than the last one
            headline=f"{skills[0]} engineer",
            title="Engineer",
            company=f"c{self.rng.randrange(10)}",
            industry="Technology",
            skills=skills,
        )
