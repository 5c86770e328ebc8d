"""``streams.backoff``: delays grow to a bound; retries only the errors named."""

from __future__ import annotations

from itertools import islice

import pytest

from streams.backoff import Backoff, retry


def test_delays_double_up_to_the_bound() -> None:
    assert list(islice(Backoff(0.5, 3.0).delays(), 5)) == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("initial, bound, factor", [(0, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_an_invalid_policy_is_refused(initial: float, bound: float, factor: float) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(initial, bound, factor)


async def test_retry_waits_out_named_errors_and_returns() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("broker down")
        return "answer"

    assert await retry(flaky, Backoff(0.01, 0.02), "reading", (ConnectionError,)) == "answer"
    assert len(calls) == 3


async def test_other_errors_propagate_at_once() -> None:
    async def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retry(broken, Backoff(0.01, 0.02), "reading", (ConnectionError,))
