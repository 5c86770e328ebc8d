"""The prompt processor's local table state is a cache of its changelog topics: keep it across
restarts only while it was built from those very topics.

With the RocksDB store, Faust resumes each table partition from the changelog offset it last
persisted locally, so a restart reads only what was written since. That is right only if the
changelog is the one the state came from: after the broker's data was wiped, a topic deleted
and created again, or a data directory copied from another cluster, the persisted offsets
point into a different log (Faust then refuses to start: its offsets are past the new high
watermark, or, worse, silently skips records below them). So the data directory records the
cluster id and the topic id of every changelog it was built from; on a mismatch, or state of
unknown origin, the directory is emptied and the tables are rebuilt from the changelogs.

What a kill -9 can leave behind is safe: the local store may hold table writes whose changelog
send was not acknowledged yet, but the input records that made them are not committed either
(``streams.prompt_commits``), so they are processed again and write those keys again, changelog
included. (Kafka Streams makes the same trade for at-least-once.)
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.errors import StreamsError

log = logging.getLogger(__name__)
IDENTITY_FILE = "changelog-identity.json"


class TableStateError(StreamsError):
    """The identity of the changelog topics could not be read."""


def changelog_identity(
    admin: AdminClient, changelogs: Sequence[str], timeout_s: float = 30.0
) -> dict[str, str]:
    """``{"cluster": id, <changelog>: topic id, ...}`` as the cluster reports them now."""
    from confluent_kafka import TopicCollection

    try:
        cluster = admin.list_topics(timeout=timeout_s).cluster_id
        described = admin.describe_topics(
            TopicCollection(list(changelogs)), request_timeout=timeout_s
        )
        topics = {name: str(future.result().topic_id) for name, future in described.items()}
    except KafkaException as error:
        raise TableStateError(f"reading the changelog topics' ids failed: {error}") from error
    return {"cluster": str(cluster), **topics}


def keep_or_reset(data_dir: Path, identity: Mapping[str, str]) -> bool:
    """Keep ``data_dir`` if it was built from the changelogs of ``identity``; otherwise empty
    it. Records ``identity`` in it either way; returns whether the state was kept."""
    file = data_dir / IDENTITY_FILE
    recorded = _recorded(file)
    kept = recorded == dict(identity)
    if not kept and data_dir.exists() and any(data_dir.iterdir()):
        reason = "of unknown origin" if recorded is None else f"built from {recorded}"
        log.warning("local table state in %s is %s: rebuilding it from the changelogs", data_dir,
                    reason)  # fmt: skip
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(dict(identity), sort_keys=True))
    return kept


def _recorded(file: Path) -> dict[str, str] | None:
    try:
        value = json.loads(file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
