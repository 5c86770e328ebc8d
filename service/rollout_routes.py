"""``POST|GET /v1/admin/rollout``: start a model rollout and follow it
(``service.rollout_controller`` runs it).

Example::

    curl -X POST localhost:8080/v1/admin/rollout -d '{"model_path": "/models/dual-2026.2"}'
    curl localhost:8080/v1/admin/rollout      # state, counts, seconds; "switched" when done
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api import RolloutRequest, RolloutStatusBody
from service.errors import ApiError, error_responses
from service.rollout_controller import RolloutController
from service.state import ServiceState, ready_state, service_state

router = APIRouter()


def _controller(state: ServiceState) -> RolloutController:
    if state.rollouts is None:
        raise ApiError(503, "not_ready", "model rollouts are not available in this process")
    return state.rollouts


@router.post(
    "/v1/admin/rollout",
    status_code=202,
    response_model=RolloutStatusBody,
    responses=error_responses(400, 409, 422, 503),
)
async def start_rollout(request: Request, body: RolloutRequest) -> RolloutStatusBody:
    """Re-embed every live post and member with the model in ``model_path`` into a shadow
    index while the current one serves, then switch queries to it in one step. 409 while a
    rollout runs; 422 when ``model_path`` is no model directory. Poll ``GET`` for progress."""
    controller = _controller(ready_state(request))
    controller.start(body.model_path, body.ranker_checkpoint)
    return controller.status()


@router.get("/v1/admin/rollout", response_model=RolloutStatusBody, responses=error_responses(503))
async def rollout_status(request: Request) -> RolloutStatusBody:
    """The current or last rollout (``idle`` if none ran) and the model serving now."""
    return _controller(service_state(request)).status()
