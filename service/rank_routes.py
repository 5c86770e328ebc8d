"""GR ranking over HTTP: ``POST /v1/rank`` and the ranking step of the feed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from fastapi import APIRouter, Request, Response

from service.api import FeedItem, RankedPost, RankRequest, RankResponse
from service.errors import ApiError, error_responses
from service.json_body import json_body
from service.ranker import Ranked, Ranker
from service.state import ready_state

router = APIRouter()


@router.post("/v1/rank", response_model=RankResponse, responses=error_responses(400, 413, 422, 503))
def rank(request: Request, body: RankRequest) -> Response:
    """Score posts for a member with the GR: per-task probabilities and a combined score,
    best first. Posts the index does not hold come back in ``unknown_post_ids``; a member
    with no history is scored from the candidates and their profile alone."""
    state = ready_state(request)
    ranker = state.serving.ranker  # read once: a rollout may swap it meanwhile
    if ranker.checkpoint is None:
        raise ApiError(503, "ranker_unavailable", f"no GR ranker: {ranker.unavailable_reason}")
    limit = ranker.settings.max_candidates
    if len(body.post_ids) > limit:
        raise ApiError(413, "payload_too_large", f"{len(body.post_ids)} post ids; limit {limit}")
    tasks = ranker.checkpoint.model.config.tasks
    unknown_tasks = sorted(set(body.task_weights or {}) - set(tasks))
    if unknown_tasks:
        raise ApiError(422, "validation", f"unknown tasks {unknown_tasks}; tasks are {list(tasks)}")
    with state.metrics.query_duration.labels("rank").time():
        ranked = ranker.rank(body.member_id, body.post_ids, body.task_weights, body.device)
    return json_body(
        RankResponse(
            member_id=body.member_id,
            items=[
                RankedPost(post_id=post_id, score=score, task_scores=task_scores)
                for post_id, score, task_scores in _best_first(ranked, tasks)
            ],
            unknown_post_ids=ranked.unknown_post_ids,
            history_steps=ranked.history_steps,
            ranker_version=ranker.version or "",
        )
    )


def rank_items(ranker: Ranker, member_id: str, items: list[FeedItem]) -> list[FeedItem]:
    """``items`` reordered by the GR's combined score, with their scores filled in."""
    if not items or ranker.checkpoint is None:
        return items
    ranked = ranker.rank(member_id, [item.post_id for item in items])
    by_id = {item.post_id: item for item in items}
    return [
        by_id[post_id].model_copy(update={"rank_score": score, "task_scores": task_scores})
        for post_id, score, task_scores in _best_first(ranked, ranker.checkpoint.model.config.tasks)
    ]


def _best_first(
    ranked: Ranked, tasks: tuple[str, ...]
) -> Iterator[tuple[str, float, dict[str, float]]]:
    """(post id, combined score, probability per task), highest combined score first."""
    for i in np.argsort(-ranked.combined, kind="stable"):
        probs = map(float, ranked.probs[i])
        yield ranked.post_ids[i], float(ranked.combined[i]), dict(zip(tasks, probs, strict=True))
