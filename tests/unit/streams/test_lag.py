"""``streams.lag.KafkaOffsetsSource`` without a broker: after a failed read nothing of the old
clients is reused, every error code of a group read fails the reading, and a refused
connection fails at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiokafka.errors import CoordinatorNotAvailableError, KafkaError
from aiokafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsResponse_v3
from aiokafka.protocol.commit import OffsetFetchResponse_v1, OffsetFetchResponse_v3
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException

import streams.lag as lag
from streams.lag import (
    GroupState,
    KafkaOffsetsSource,
    LagReadError,
    described_members,
    fetched_offsets,
)
from streams.local_broker import free_port
from streams.settings import KafkaSettings

GROUP_LOAD_IN_PROGRESS = 14  # what a coordinator answers while it loads the offsets topic


def offsets_response(error: int = 0, partition_error: int = 0) -> OffsetFetchResponse_v3:
    return OffsetFetchResponse_v3(0, [("in", [(0, 5, "", partition_error), (1, -1, "", 0)])], error)


def groups_response(group: str, error: int = 0, members: int = 0) -> DescribeGroupsResponse_v3:
    member = ("m", "c", "/127.0.0.1", b"", b"")
    state = "Stable" if members else "Dead"
    return DescribeGroupsResponse_v3(0, [(error, group, state, "", "", [member] * members, 0)])


class FakeAdmin:
    """A confluent ``AdminClient`` whose ``list_offsets`` fails while ``failing`` is set
    (librdkafka's ``_TIMED_OUT``, or ``code`` when given)."""

    def __init__(self, failing: bool, code: int = ConfluentError._TIMED_OUT) -> None:
        self.failing = failing
        self.code = code

    def list_offsets(self, request: dict[Any, Any], request_timeout: float) -> dict[Any, Any]:
        if self.failing:
            raise KafkaException(ConfluentError(self.code, "the broker's answer"))
        answer = SimpleNamespace(result=lambda: SimpleNamespace(offset=7))
        return dict.fromkeys(request, answer)


class FakeClient:
    """An ``AIOKafkaClient`` answering group reads; the first ``failures`` clients fail."""

    made: ClassVar[list[FakeClient]] = []
    failures: ClassVar[int] = 0

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.closed = False
        self.fails = len(FakeClient.made) < FakeClient.failures
        FakeClient.made.append(self)

    async def bootstrap(self) -> None:
        pass

    async def coordinator_lookup(self, kind: int, key: str) -> int:
        if self.fails:
            raise CoordinatorNotAvailableError()
        return 1

    async def send(self, node: int, request: Any) -> Any:
        if isinstance(request, DescribeGroupsRequest):
            return groups_response("g", members=2)
        return offsets_response()

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeClient]]:
    FakeClient.made, FakeClient.failures = [], 0
    monkeypatch.setattr(lag, "AIOKafkaClient", FakeClient)
    yield FakeClient


def test_group_offsets_and_members_come_from_the_responses() -> None:
    assert fetched_offsets(offsets_response(), "g") == {("in", 0): 5, ("in", 1): -1}
    assert fetched_offsets(OffsetFetchResponse_v1([("in", [(0, 3, "", 0)])]), "g") == {("in", 0): 3}
    assert described_members(groups_response("g", members=2), "g") == 2
    assert described_members(groups_response("g"), "g") == 0  # unknown: Dead, no members


def test_a_loading_coordinator_fails_the_reading_instead_of_reading_as_nothing_committed() -> None:
    for response in (offsets_response(GROUP_LOAD_IN_PROGRESS), offsets_response(0, 16)):
        with pytest.raises(KafkaError):
            fetched_offsets(response, "g")
    with pytest.raises(KafkaError):
        described_members(groups_response("g", GROUP_LOAD_IN_PROGRESS), "g")
    with pytest.raises(KafkaError, match="left out 'g'"):
        described_members(groups_response("other"), "g")


def test_each_group_read_uses_a_fresh_client_and_closes_it(
    fake_clients: type[FakeClient],
) -> None:
    fake_clients.failures = 1
    source = KafkaOffsetsSource(KafkaSettings(), timeout_s=2.0)
    with pytest.raises(LagReadError, match="reading group 'g' failed"):
        source.group_state("g")
    assert source.group_state("g") == GroupState({("in", 0): 5, ("in", 1): -1}, 2)
    assert len(fake_clients.made) == 2 and all(c.closed for c in fake_clients.made)
    assert fake_clients.made[0].config["request_timeout_ms"] == 2000


def test_a_failed_read_drops_the_admin_client_for_the_next_reading(
    monkeypatch: pytest.MonkeyPatch, fake_clients: type[FakeClient]
) -> None:
    admins = [FakeAdmin(failing=True), FakeAdmin(failing=False), FakeAdmin(failing=False)]
    made: list[FakeAdmin] = []

    def build(kafka: KafkaSettings) -> FakeAdmin:
        made.append(admins[len(made)])
        return made[-1]

    monkeypatch.setattr(lag, "admin_client", build)
    source = KafkaOffsetsSource(KafkaSettings())
    with pytest.raises(LagReadError, match=r"listing offsets of in failed.*_TIMED_OUT"):
        source.watermarks([("in", 0)])
    assert source.watermarks([("in", 0)]) == ({("in", 0): 7}, {("in", 0): 7})
    assert len(made) == 2  # rebuilt once, then kept while it works
    fake_clients.failures = len(fake_clients.made) + 1
    with pytest.raises(LagReadError):
        source.group_state("g")  # any failed read, not only the admin's own
    source.watermarks([("in", 0)])
    assert len(made) == 3


def test_offsets_of_a_partition_whose_leader_moved_are_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moved = ConfluentError.NOT_LEADER_FOR_PARTITION
    admins = [FakeAdmin(True, moved), FakeAdmin(False), FakeAdmin(True), FakeAdmin(False)]
    monkeypatch.setattr(lag, "admin_client", lambda kafka: admins.pop(0))
    monkeypatch.setattr(lag, "OFFSETS_RETRY_S", 0.0)
    assert KafkaOffsetsSource(KafkaSettings()).watermarks([("in", 0)]) == (
        {("in", 0): 7},
        {("in", 0): 7},
    )
    assert len(admins) == 2
    with pytest.raises(LagReadError, match="_TIMED_OUT"):  # it took timeout_s already
        KafkaOffsetsSource(KafkaSettings()).watermarks([("in", 0)])
    assert len(admins) == 1  # not asked again


def test_a_refused_connection_fails_the_reading_at_once() -> None:
    source = KafkaOffsetsSource(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"))
    began = time.monotonic()
    with pytest.raises(LagReadError, match="reading cluster metadata failed"):
        source.partition_counts()
    with pytest.raises(LagReadError, match="reading group 'g' failed"):
        source.group_state("g")
    assert time.monotonic() - began < 5.0  # librdkafka would retry for timeout_s (10 s) each
