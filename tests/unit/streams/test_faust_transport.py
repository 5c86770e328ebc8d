"""``streams.faust_transport``: the idempotent producer, the consumer's read offsets kept for
changelogs only, and changelog writes handed to the delivery tracker."""

from __future__ import annotations

import faust
from faust.types import TP

from streams.faust_transport import ChangelogReadOffsets, Consumer, Producer, use_feedline_transport

CHANGELOG = TP("app-posts-changelog", 0)
INPUT = TP("posts.created", 0)


def test_read_offsets_are_remembered_for_changelogs_only() -> None:
    offsets = ChangelogReadOffsets(lambda tp: tp.topic.endswith("-changelog"))
    offsets[CHANGELOG] = 7
    offsets[INPUT] = 9
    offsets.update({INPUT: 11})
    assert (offsets[CHANGELOG], offsets[INPUT]) == (7, None)
    assert offsets[TP("app-posts-changelog", 1)] is None  # missing reads None, like faust's
    assert offsets.pop(INPUT, None) is None
    del offsets[CHANGELOG]
    assert len(offsets) == 0 and list(offsets) == []


def test_the_app_builds_feedline_clients_with_idempotence() -> None:
    app = faust.App("transport-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    use_feedline_transport(app)
    assert isinstance(app.producer, Producer)
    assert app.producer._settings_extra() == {"acks": "all", "enable_idempotence": True}
    assert app.transport.Consumer is Consumer
