"""A small typed HTTP client for the query API (used by the demo and the tests).

Example::

    with QueryClient("http://127.0.0.1:8080") as client:
        client.feed("m00001", k=10).items
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from service.api import FeedResponse, IndexStats, PostInfo, RankResponse, RetrieveResponse


class QueryClient:
    """Calls the query service; non-2xx answers raise ``httpx.HTTPStatusError``."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def is_ready(self) -> bool:
        """True when ``/readyz`` answers 200; False while not ready or not listening."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def stats(self) -> IndexStats:
        """``GET /v1/stats``."""
        return IndexStats.model_validate(self._get("/v1/stats"))

    def feed(self, member_id: str, k: int = 10) -> FeedResponse:
        """``GET /v1/members/{member_id}/feed``."""
        return FeedResponse.model_validate(self._get(f"/v1/members/{member_id}/feed", k=k))

    def retrieve(
        self, *, member_id: str | None = None, text: str | None = None, k: int = 10
    ) -> RetrieveResponse:
        """``POST /v1/retrieve`` by member or by text."""
        body = {"member_id": member_id, "text": text, "k": k}
        response = self._http.post("/v1/retrieve", json={k: v for k, v in body.items() if v})
        response.raise_for_status()
        return RetrieveResponse.model_validate(response.json())

    def rank(
        self,
        member_id: str,
        post_ids: list[str],
        task_weights: dict[str, float] | None = None,
    ) -> RankResponse:
        """``POST /v1/rank``."""
        body: dict[str, Any] = {"member_id": member_id, "post_ids": post_ids}
        if task_weights is not None:
            body["task_weights"] = task_weights
        response = self._http.post("/v1/rank", json=body)
        response.raise_for_status()
        return RankResponse.model_validate(response.json())

    def start_rollout(self, model_path: str, ranker_checkpoint: str | None = None) -> Any:
        """``POST /v1/admin/rollout``; returns the status body."""
        body = {"model_path": model_path, "ranker_checkpoint": ranker_checkpoint}
        response = self._http.post("/v1/admin/rollout", json=body)
        response.raise_for_status()
        return response.json()

    def rollout_status(self) -> Any:
        """``GET /v1/admin/rollout``: the status body of the current or last rollout."""
        return self._get("/v1/admin/rollout")

    def post(self, post_id: str) -> PostInfo | None:
        """``GET /v1/posts/{post_id}``; None when the post is not indexed."""
        response = self._http.get(f"/v1/posts/{post_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return PostInfo.model_validate(response.json())

    def metrics_text(self) -> str:
        """The Prometheus exposition of ``/metrics``."""
        response = self._http.get("/metrics")
        response.raise_for_status()
        return response.text

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()
