"""The short chaos soak of ``make test``: N of every role at once (2 prompt processors, 3
embedding workers, 2 query-service replicas), scaled up and down while a workload runs and
killed -9 with the broker: nothing may be lost, stale, resurrected or dead-lettered, every
scaled group settles with one owner per partition, the replicas answer alike, and a replica
that joins late is ready only once caught up."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedline.soak import LOSS_COUNTS, SoakConfig, run_soak

pytestmark = pytest.mark.integration


# scaling of each kind (+ starts a new one, - stops one with SIGTERM for good), a rebalance of
# each worker group by kill -9, the broker killed while the killed prompt worker rejoins its
# group (issue 12), a replica restored from its snapshot after a kill, a replica that joins
# late and replays everything, and the removed one back: it restores its snapshot, then tails
STEPS = (
    "+embed-4", "prompts-1", "broker", "+prompts-3", "-embed-1", "serve-1",
    "-serve-2", "embed-2", "-prompts-3", "+serve-3", "+serve-2",
)  # fmt: skip


@pytest.mark.timeout(900)
def test_short_soak_scales_every_role_and_loses_nothing(tmp_path: Path) -> None:
    config = SoakConfig(
        seed=11,
        partitions=6,  # >= the most workers of a kind; 2 and 3 prompt processors both divide it
        prompt_workers=2,
        embed_workers=3,
        serve_replicas=2,
        victims=STEPS,
        kill_every_s=(2.5, 4.0),  # a step while the previous one's roles still start
        broker_down_s=(1.0, 2.0),
        events_per_s=6.0,
        members=20,
        catch_up_timeout_s=480.0,
        quiet_s=6.0,
        work_dir=tmp_path / "soak",
    )
    summary = run_soak(config)
    logs = "\n".join(
        f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted((tmp_path / "soak" / "logs").glob("*.log"))
    )
    assert summary["caught_up"], f"the pipeline did not catch up: {summary}\n{logs}"
    assert {k: summary[k] for k in LOSS_COUNTS} == dict.fromkeys(LOSS_COUNTS, 0), (
        f"{summary}\n{logs}"
    )
    assert summary["kills"] == {"embed-2": 1, "prompts-1": 1, "serve-1": 1}
    assert summary["broker_restarts"] == 1
    assert summary["unexpected_exits"] == {}, logs
    assert summary["roles_at_end"] == [
        "embed-2", "embed-3", "embed-4", "prompts-1", "prompts-2", "serve-1", "serve-2",
        "serve-3",
    ]  # fmt: skip
    rebalances = summary["rebalance_s"]
    assert sorted(rebalances) == ["+embed-4", "+prompts-3", "-embed-1", "-prompts-3"]
    assert all(seconds is not None for seconds in rebalances.values()), rebalances
    late = summary["late_replicas"]
    assert late["serve-3"]["start"] == "no_snapshot", late  # nothing of its own: replays
    assert late["serve-2"]["start"] == "restored", late  # its snapshot, then the tail
    for replica in late.values():
        assert replica["seconds"] is not None, late
        assert replica["lag_at_ready"] <= replica["written_meanwhile"], late
    assert summary["posts"] > 20 and summary["members"] == 20
