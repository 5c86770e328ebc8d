"""The short chaos soak of ``make test``: kill -9 an embedding worker, a prompt worker, the broker
(while that prompt worker rejoins its group) and the query service while a workload runs;
nothing may be lost, stale, resurrected or dead-lettered."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedline.soak import LOSS_COUNTS, SoakConfig, run_soak

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    config = SoakConfig(
        seed=11,
        # a rebalance of each worker group, the broker killed while the restarted prompt worker
        # joins its group (issue 12), the service restored from its snapshot while they recover
        victims=("embed-1", "prompts-1", "broker", "serve"),
        kill_every_s=(6.0, 9.0),
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
    assert summary["kills"] == {"embed-1": 1, "prompts-1": 1, "serve": 1}
    assert summary["broker_restarts"] == 1
    assert summary["unexpected_exits"] == {}, logs
    assert summary["posts"] > 20 and summary["members"] == 20
