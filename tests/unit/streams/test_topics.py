"""``streams.topics``: the catalog, DLQ companions and lookups (no broker)."""

from __future__ import annotations

import pytest

from streams.errors import TopicError
from streams.topics import (
    CATALOG,
    CO_PARTITIONED,
    DLQ_SUFFIX,
    PRODUCER_TOPICS,
    TopicSpec,
    dlq_name,
    required_topics,
    spec_by_name,
)


def test_catalog_matches_the_design() -> None:
    assert [(s.name, s.key, s.cleanup) for s in CATALOG] == [
        ("posts.created", "post_id", "delete"),
        ("posts.deleted", "post_id", "delete"),
        ("engagements", "post_id", "delete"),
        ("members.profile", "member_id", "compact"),
        ("engagements.by-member", "member_id", "delete"),
        ("prompts.posts", "post_id", "delete"),
        ("prompts.members", "member_id", "delete"),
        ("embeddings.posts", "post_id", "compact"),
        ("embeddings.members", "member_id", "compact"),
    ]


def test_required_topics_add_a_dlq_after_each_topic_with_dead_letters() -> None:
    topics = required_topics()
    names = [t.name for t in topics]
    expected: list[str] = []
    for spec in CATALOG:
        expected.append(spec.name)
        if spec.dead_letters:
            expected.append(spec.name + ".dlq")
    assert names == expected
    assert len(names) == len(set(names)) == 18
    for spec in topics:
        if spec.name.endswith(DLQ_SUFFIX):
            source = spec_by_name(spec.name.removesuffix(DLQ_SUFFIX))
            assert (spec.key, spec.cleanup, spec.dead_letters) == (source.key, "delete", False)


def test_required_topics_skip_dlq_for_topics_without_dead_letters() -> None:
    quiet = TopicSpec("scratch", "id", "compact", dead_letters=False)
    topics = required_topics([quiet, PRODUCER_TOPICS[0]])
    assert [t.name for t in topics] == ["scratch", "posts.created", "posts.created.dlq"]


def test_dlq_name_keeps_the_prefix() -> None:
    assert dlq_name("prod.engagements") == "prod.engagements.dlq"


def test_spec_by_name() -> None:
    assert spec_by_name("members.profile").key == "member_id"


@pytest.mark.parametrize("name", ["posts", "t.posts.created", "posts.created.dlq", ""])
def test_unknown_spec_raises_topic_error_listing_the_catalog(name: str) -> None:
    with pytest.raises(TopicError) as caught:
        spec_by_name(name)
    assert str(caught.value).startswith(f"unknown topic {name!r}; the catalog has: posts.created,")
    assert "embeddings.members" in str(caught.value)


def test_co_partitioned_groups_share_their_key() -> None:
    for group in CO_PARTITIONED:
        assert len({spec.key for spec in group}) == 1
