"""A seeded synthetic professional network: members, authors, posts and engagements.

The world feeds the demo, the tests and the benchmarks with wire-contract events (see
``DESIGN.md``): member profiles, posts written by a subset of the members, and engagements
biased by interest and popularity, including many impressions with no follow-up (the hard
negatives). Topic words are shared between profiles and posts (``feedline.world_vocab``) so that
an embedding model can find a member's interests in post text. The same config always gives the
same world; nothing reads global random state.

Example:
    >>> from feedline.world import WorldConfig, generate_world
    >>> world = generate_world(WorldConfig(seed=1, members=50, authors=10, posts=100))
    >>> len(world.posts), next(world.records())["topic"]
    (100, 'members.profile')
    >>> member = world.members[0]["member_id"]
    >>> 0.0 <= world.random_relevance(member) <= 1.0
    True
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from feedline.errors import FeedlineError
from feedline.world_vocab import (
    CLOSERS,
    DEGREES,
    GENERIC_SKILLS,
    HEADLINE_FORMATS,
    OPENERS,
    SCHOOLS,
    TOPICS,
    TopicVocab,
)

Event = dict[str, Any]

SCHEMA_VERSION = 1
MEMBERS_TOPIC = "members.profile"
POSTS_TOPIC = "posts.created"
ENGAGEMENTS_TOPIC = "engagements"
FORMATS = ("text", "article", "image", "video", "document", "poll")
ACTIONS = ("impression", "click", "skip", "long_dwell", "like", "comment", "share")
POSITIVE_ACTIONS = frozenset({"like", "comment", "share", "long_dwell"})
DEVICES = ("mobile", "desktop", "tablet")
TOPIC_NAMES: dict[str, str] = {key: vocab["name"] for key, vocab in TOPICS.items()}
"""Topic key (as in `World.post_topic`) -> display name, e.g. ``"machine learning"``."""

_DAY_MS = 86_400_000
_TOPIC_KEYS = tuple(TOPICS)
_FORMAT_P = np.array([0.45, 0.10, 0.20, 0.10, 0.07, 0.08])
_DEVICE_P = np.array([0.6, 0.3, 0.1])
_ON_TOPIC_POST_SHARE = 0.92  # authors mostly post on their own interests
_INTEREST_BOOST = 3.0  # impression sampling weight of an on-interest post: a mild bias
_POSTING_SPAN = 0.8  # posts are created in the first 80% of the span, engagements follow
# Follow-ups in the order they happen after an impression, with their chance per impression
# off-interest and on-interest, before the popularity factor. A skip excludes the rest.
_FOLLOW_UPS = ("skip", "click", "long_dwell", "like", "comment", "share")
_P_OFF = np.array([0.30, 0.06, 0.05, 0.04, 0.008, 0.004])
_P_ON = np.array([0.10, 0.30, 0.30, 0.25, 0.06, 0.03])
_MAX_STEP_MS = 20_000  # gap between successive follow-ups of one impression
_FOLLOW_UP_ROOM_MS = len(_FOLLOW_UPS) * _MAX_STEP_MS

_T = TypeVar("_T")
_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
_Bools = npt.NDArray[np.bool_]


class WorldConfigError(FeedlineError, ValueError):
    """A `WorldConfig` that cannot produce a world; the message names the field to fix."""


@dataclass(frozen=True)
class WorldConfig:
    """Seed, sizes and time range of a synthetic world.

    Authors are a subset of the members. Posts are created in the first 80% of
    ``[start_ms, start_ms + span_ms)`` and engagements follow them inside the span; profiles are
    last updated up to 30 days before ``start_ms``. ``impressions_per_member`` is a Poisson mean.
    """

    seed: int = 7
    members: int = 200
    authors: int = 60
    posts: int = 1000
    impressions_per_member: int = 60
    interests_per_member: tuple[int, int] = (1, 3)
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    span_ms: int = 7 * _DAY_MS

    def __post_init__(self) -> None:
        lo, hi = self.interests_per_member
        checks = (
            (self.members >= 1, f"members must be >= 1, got {self.members}"),
            (
                1 <= self.authors <= self.members,
                f"authors must be in 1..members, got {self.authors}",
            ),
            (self.posts >= self.authors, f"posts must be >= authors, got {self.posts}"),
            (self.impressions_per_member >= 0, "impressions_per_member must be >= 0"),
            (1 <= lo <= hi <= len(TOPICS), f"interests_per_member must be within 1..{len(TOPICS)}"),
            (self.span_ms >= 3_600_000, f"span_ms must be at least one hour, got {self.span_ms}"),
        )
        for ok, message in checks:
            if not ok:
                raise WorldConfigError(f"invalid WorldConfig: {message}")


@dataclass(frozen=True)
class World:
    """A generated world: wire-contract events plus the ground truth behind them.

    ``members``, ``posts`` (by ``created_at_ms``, ids in that order) and ``engagements`` (by
    ``ts_ms``) hold event dicts. ``post_topic`` and ``member_interests`` hold topic keys of
    `TOPIC_NAMES`; a member's first interest is the main one that shapes the profile.
    """

    config: WorldConfig
    members: list[Event]
    posts: list[Event]
    engagements: list[Event]
    post_topic: dict[str, str]
    member_interests: dict[str, tuple[str, ...]]
    post_author: dict[str, str]

    def records(self) -> Iterator[Event]:
        """Yield ``{"topic", "value"}`` in publish order: profiles, then posts and engagements
        merged by time (a post before engagements at the same millisecond)."""
        for member in self.members:
            yield {"topic": MEMBERS_TOPIC, "value": member}
        posts = ((p["created_at_ms"], 0, i, POSTS_TOPIC) for i, p in enumerate(self.posts))
        engagements = (
            (e["ts_ms"], 1, i, ENGAGEMENTS_TOPIC) for i, e in enumerate(self.engagements)
        )
        for _, kind, i, topic in heapq.merge(posts, engagements):
            yield {"topic": topic, "value": self.engagements[i] if kind else self.posts[i]}

    def write_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write `records` to ``path``, one JSON object per line; return how many."""
        count = 0
        with open(path, "w", encoding="utf-8") as out:
            for record in self.records():
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        return count

    def relevance_at_k(self, member_id: str, post_ids: Sequence[str]) -> float:
        """Share of ``post_ids`` whose topic is one of the member's interests (0.0 if empty).

        Raises KeyError for an unknown member or post id.
        """
        interests = self.member_interests[member_id]
        if not post_ids:
            return 0.0
        return sum(self.post_topic[p] in interests for p in post_ids) / len(post_ids)

    def random_relevance(self, member_id: str) -> float:
        """Expected `relevance_at_k` of uniformly random posts not authored by the member."""
        interests = self.member_interests[member_id]
        others = [p for p, author in self.post_author.items() if author != member_id]
        if not others:
            return 0.0
        return sum(self.post_topic[p] in interests for p in others) / len(others)


class _PostTable(NamedTuple):
    events: list[Event]
    topics: list[str]
    author_idx: _Ints  # (P,) member index of each post's author
    popularity: _Floats  # (P,) z-scored latent quality + author reach


def generate_world(config: WorldConfig = WorldConfig()) -> World:
    """Generate the world for ``config``; the same config always gives an equal world."""
    rng = np.random.default_rng(config.seed)
    member_ids = [f"m{i + 1:05d}" for i in range(config.members)]
    interests = [_draw_interests(rng, config.interests_per_member) for _ in member_ids]
    members = [
        _profile(rng, config, m, ints) for m, ints in zip(member_ids, interests, strict=True)
    ]
    table = _make_posts(rng, config, members, interests)
    post_ids = [p["post_id"] for p in table.events]
    return World(
        config=config,
        members=members,
        posts=table.events,
        engagements=_make_engagements(rng, config, member_ids, interests, table),
        post_topic=dict(zip(post_ids, table.topics, strict=True)),
        member_interests=dict(zip(member_ids, interests, strict=True)),
        post_author={p["post_id"]: p["author_id"] for p in table.events},
    )


def _pick(rng: np.random.Generator, items: Sequence[_T]) -> _T:
    return items[int(rng.integers(len(items)))]


def _sample(rng: np.random.Generator, items: Sequence[_T], k: int) -> list[_T]:
    return [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]


def _draw_interests(rng: np.random.Generator, bounds: tuple[int, int]) -> tuple[str, ...]:
    count = int(rng.integers(bounds[0], bounds[1] + 1))
    return tuple(_sample(rng, _TOPIC_KEYS, count))


# --- profiles ------------------------------------------------------------------------------


def _profile(
    rng: np.random.Generator, config: WorldConfig, member_id: str, interests: tuple[str, ...]
) -> Event:
    main = TOPICS[interests[0]]
    title, company = _pick(rng, main["titles"]), _pick(rng, main["companies"])
    skills = _skills(rng, interests)
    headline = _pick(rng, HEADLINE_FORMATS).format(
        title=title, company=company, s1=skills[0], s2=skills[1], topic=main["name"]
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "member_id": member_id,
        "updated_at_ms": config.start_ms - int(rng.integers(0, 30 * _DAY_MS)),
        "headline": headline,
        "title": title,
        "company": company,
        "industry": main["industry"],
        "skills": skills,
        "positions": _positions(rng, config.start_ms, interests, title, company),
        "education": [_education(rng, main)],
    }


def _skills(rng: np.random.Generator, interests: tuple[str, ...]) -> list[str]:
    """3-5 skills of the main interest, 1-2 of each other one, sometimes a generic one."""
    picks = _sample(rng, TOPICS[interests[0]]["skills"], int(rng.integers(3, 6)))
    for key in interests[1:]:
        picks += _sample(rng, TOPICS[key]["skills"], int(rng.integers(1, 3)))
    if rng.random() < 0.5:
        picks.append(_pick(rng, GENERIC_SKILLS))
    return list(dict.fromkeys(picks))


def _positions(
    rng: np.random.Generator, now_ms: int, interests: tuple[str, ...], title: str, company: str
) -> list[Event]:
    """1-3 positions, oldest first: the current one is last, with ``end_ms`` None."""
    start = now_ms - int(rng.integers(90, 5 * 365)) * _DAY_MS
    newest_first: list[Event] = [
        {"title": title, "company": company, "start_ms": start, "end_ms": None}
    ]
    for _ in range(int(rng.integers(0, 3))):
        end = start - int(rng.integers(0, 90)) * _DAY_MS
        start = end - int(rng.integers(365, 4 * 365)) * _DAY_MS
        vocab = TOPICS[_pick(rng, interests)]
        role = {"title": _pick(rng, vocab["titles"]), "company": _pick(rng, vocab["companies"])}
        newest_first.append({**role, "start_ms": start, "end_ms": end})
    return newest_first[::-1]


def _education(rng: np.random.Generator, vocab: TopicVocab) -> Event:
    field = _pick(rng, vocab["fields"])
    return {"school": _pick(rng, SCHOOLS), "degree": _pick(rng, DEGREES), "field": field}


# --- posts ---------------------------------------------------------------------------------


def _make_posts(
    rng: np.random.Generator,
    config: WorldConfig,
    members: list[Event],
    interests: list[tuple[str, ...]],
) -> _PostTable:
    """Every author posts at least once; the rest by a heavy-tailed author activity."""
    authors = np.sort(rng.choice(config.members, size=config.authors, replace=False))
    followers = np.rint(rng.lognormal(6.0, 1.5, size=config.authors)).astype(np.int64) + 1
    activity = rng.lognormal(0.0, 1.0, size=config.authors)
    extra = rng.choice(
        config.authors, size=config.posts - config.authors, p=activity / sum(activity)
    )
    slots = rng.permutation(np.concatenate([np.arange(config.authors), extra]))
    offsets = np.sort(rng.integers(0, int(config.span_ms * _POSTING_SPAN), size=config.posts))
    events, topics = [], []
    for i, slot in enumerate(slots):
        author = members[authors[slot]]
        topics.append(_post_topic(rng, interests[authors[slot]]))
        post_id, created = f"p{i + 1:06d}", config.start_ms + int(offsets[i])
        events.append(_post_event(rng, post_id, author, created, int(followers[slot]), topics[-1]))
    reach = _zscore(np.log(followers[slots].astype(np.float64)))
    popularity = _zscore(rng.normal(size=config.posts) + 0.5 * reach)
    return _PostTable(events, topics, authors[slots], popularity)


def _zscore(values: _Floats) -> _Floats:
    return (values - values.mean()) / (values.std() or 1.0)


def _post_topic(rng: np.random.Generator, interests: tuple[str, ...]) -> str:
    """Mostly one of the author's interests (the main one twice as often), else any topic."""
    if rng.random() >= _ON_TOPIC_POST_SHARE:
        return _pick(rng, _TOPIC_KEYS)
    weights = np.array([2.0] + [1.0] * (len(interests) - 1))
    return interests[int(rng.choice(len(interests), p=weights / weights.sum()))]


def _post_event(
    rng: np.random.Generator, post_id: str, author: Event, created: int, followers: int, topic: str
) -> Event:
    return {
        "schema_version": SCHEMA_VERSION,
        "post_id": post_id,
        "author_id": author["member_id"],
        "created_at_ms": created,
        "format": FORMATS[int(rng.choice(len(FORMATS), p=_FORMAT_P))],
        "text": _post_text(rng, TOPICS[topic]),
        "author_headline": author["headline"],
        "author_company": author["company"],
        "industry": author["industry"],
        "language": "en",
        "author_followers": followers,
    }


def _post_text(rng: np.random.Generator, vocab: TopicVocab) -> str:
    """1-3 topic sentences, maybe a generic opener or closer (4 at most), maybe hashtags."""
    templates = _sample(rng, vocab["templates"], int(rng.integers(1, 4)))
    sentences = [_fill(rng, vocab, template) for template in templates]
    if rng.random() < 0.3:
        sentences.insert(0, _pick(rng, OPENERS))
    if len(sentences) < 4 and rng.random() < 0.3:
        sentences.append(_pick(rng, CLOSERS))
    text = " ".join(sentences)
    if rng.random() < 0.5:
        text += "\n\n" + " ".join(_sample(rng, vocab["hashtags"], int(rng.integers(1, 4))))
    return text


def _fill(rng: np.random.Generator, vocab: TopicVocab, template: str) -> str:
    k1, k2, k3 = _sample(rng, vocab["keywords"], 3)
    skill, company = _pick(rng, vocab["skills"]), _pick(rng, vocab["companies"])
    sentence = template.format(k1=k1, k2=k2, k3=k3, skill=skill, company=company)
    return sentence[0].upper() + sentence[1:]


# --- engagements ---------------------------------------------------------------------------


def _make_engagements(
    rng: np.random.Generator,
    config: WorldConfig,
    member_ids: list[str],
    interests: list[tuple[str, ...]],
    table: _PostTable,
) -> list[Event]:
    topic_idx = np.array([_TOPIC_KEYS.index(t) for t in table.topics])
    created = np.array([p["created_at_ms"] for p in table.events], dtype=np.int64)
    events: list[Event] = []
    for m, member_id in enumerate(member_ids):
        on = np.isin(topic_idx, [_TOPIC_KEYS.index(t) for t in interests[m]])
        own = table.author_idx == m
        events += _member_engagements(rng, config, member_id, on, own, table, created)
    events.sort(key=lambda e: e["ts_ms"])  # stable: one impression's actions keep their order
    return events


def _member_engagements(
    rng: np.random.Generator,
    config: WorldConfig,
    member_id: str,
    on: _Bools,
    own: _Bools,
    table: _PostTable,
    created: _Ints,
) -> list[Event]:
    """Impressions of posts sampled by interest and popularity, each with its follow-ups."""
    count = min(int(rng.poisson(config.impressions_per_member)), int((~own).sum()))
    if count == 0:
        return []
    weights = np.exp(0.5 * table.popularity) * np.where(on, _INTEREST_BOOST, 1.0) * ~own
    chosen = rng.choice(len(weights), size=count, replace=False, p=weights / weights.sum())
    last_ms = config.start_ms + config.span_ms - _FOLLOW_UP_ROOM_MS
    seen = created[chosen] + 1_000
    seen += ((last_ms - seen) * rng.beta(1.0, 4.0, size=count)).astype(np.int64)
    fired = _follow_ups(rng, on[chosen], table.popularity[chosen])  # (N, 6)
    steps = np.cumsum(rng.integers(1_000, _MAX_STEP_MS, size=fired.shape), axis=1)  # (N, 6)
    long_ms = 10_000 + rng.lognormal(9.0, 0.7, size=count).astype(np.int64)
    click_ms = np.where(fired[:, 2], long_ms, rng.integers(1_000, 10_000, size=count))
    devices = _devices(rng, count)
    events = []
    for j, p in enumerate(chosen):
        post_id, device, ts = table.events[p]["post_id"], devices[j], int(seen[j])
        events.append(_engagement(member_id, post_id, "impression", ts, device))
        for a in np.flatnonzero(fired[j]):
            dwell = {"click": int(click_ms[j]), "long_dwell": int(long_ms[j])}.get(_FOLLOW_UPS[a])
            at = ts + int(steps[j, a])
            events.append(_engagement(member_id, post_id, _FOLLOW_UPS[a], at, device, dwell))
    return events


def _follow_ups(rng: np.random.Generator, on: _Bools, popularity: _Floats) -> _Bools:
    """(N, 6) flags over `_FOLLOW_UPS`: strongly driven by interest, mildly by popularity."""
    lift = np.exp(0.25 * popularity)[:, None]  # (N, 1)
    p = np.where(on[:, None], _P_ON, _P_OFF) * lift
    p[:, 0] /= lift[:, 0] ** 2  # popular posts are skipped less, not more
    fired = rng.random(p.shape) < np.minimum(p, 0.95)
    fired[:, 2] |= fired[:, 1] & (rng.random(len(on)) < 0.3)  # clicks often lead to long dwell
    fired[fired[:, 0], 1:] = False
    return fired


def _devices(rng: np.random.Generator, count: int) -> list[str]:
    """A preferred device per member, with occasional switches."""
    preferred = int(rng.choice(len(DEVICES), p=_DEVICE_P))
    other = rng.choice(len(DEVICES), size=count, p=_DEVICE_P)
    idx = np.where(rng.random(count) < 0.85, preferred, other)
    return [DEVICES[int(i)] for i in idx]


def _engagement(
    member_id: str, post_id: str, action: str, ts_ms: int, device: str, dwell_ms: int | None = None
) -> Event:
    event: Event = {
        "schema_version": SCHEMA_VERSION,
        "member_id": member_id,
        "post_id": post_id,
        "action": action,
        "ts_ms": ts_ms,
        "device": device,
    }
    if dwell_ms is not None:
        event["dwell_ms"] = dwell_ms
    return event


def event_time_ms(value: Mapping[str, Any]) -> int:
    """The time of any world event: ``ts_ms``, ``edited_at_ms`` (an edit), ``created_at_ms``
    or ``updated_at_ms``."""
    for name in ("ts_ms", "edited_at_ms", "created_at_ms", "updated_at_ms"):
        if value.get(name):
            return int(value[name])
    return 0
