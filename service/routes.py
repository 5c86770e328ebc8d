"""HTTP endpoints. Handlers are plain ``def``: FastAPI runs them in its thread pool, so index
searches and query embedding never block the event loop that feeds the index. The hot
routes return their body already serialised (``service.json_body``). Each handler
reads the serving model (index, encoder, ranker) once and uses only that value, so a model
rollout that switches meanwhile never mixes two models in one answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from index_store import Hit, PostFilter, PostRecord
from schemas.events import PostFormat
from schemas.fields import EntityId
from service.api import (
    FeedItem,
    FeedResponse,
    IndexStats,
    PostInfo,
    RetrieveRequest,
    RetrieveResponse,
    SearchFilters,
)
from service.errors import ApiError, error_responses
from service.json_body import json_body
from service.member_query import member_query_vector
from service.rank_routes import rank_items
from service.serving import ServingModel
from service.state import ServiceState, ready_state, service_state

router = APIRouter()

MemberIdPath = Annotated[EntityId, Path(description="member id")]


@router.get("/healthz", responses=error_responses(503))
def healthz(request: Request) -> dict[str, str]:
    """Liveness: the process serves HTTP and its index feed is running."""
    if not service_state(request).feed_alive:
        raise ApiError(503, "not_ready", "the index feed stopped; this process must restart")
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
def readyz(request: Request) -> dict[str, object]:
    """Readiness: 200 only once the index caught up with the end of its input topics."""
    state = ready_state(request)
    return {"status": "ready", **state.serving.store.counts()}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this role's metrics."""
    return Response(
        generate_latest(service_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get(
    "/v1/members/{member_id}/feed",
    response_model=FeedResponse,
    responses=error_responses(404, 413, 422, 503),
)
def member_feed(
    request: Request,
    member_id: MemberIdPath,
    k: Annotated[int, Query(ge=1)] = 10,
    language: Annotated[list[str] | None, Query(description="any of these languages")] = None,
    format: Annotated[list[PostFormat] | None, Query(description="any of these formats")] = None,
    author: Annotated[list[EntityId] | None, Query(description="any of these authors")] = None,
    created_after_ms: Annotated[int | None, Query(ge=0)] = None,
    exclude: Annotated[list[EntityId] | None, Query(description="post ids to skip")] = None,
) -> Response:
    """The member's feed: kNN over posts with the member's vector (with
    ``FEEDLINE_SERVICE_LATEST_WEIGHT``, plus their newest engaged post's), own posts excluded,
    optionally filtered (filters apply before top-k); then, with a GR checkpoint loaded, the
    ``feed_candidates`` nearest are ranked by the GR and the best ``k`` returned."""
    state = ready_state(request)
    filters = SearchFilters(
        languages=language,
        formats=format,
        authors=author,
        created_after_ms=created_after_ms,
        exclude_post_ids=exclude or [],
    )
    serving = state.serving
    with state.metrics.query_duration.labels("feed").time():
        flt = _post_filter(state, filters, exclude_author=member_id)
        k = _bounded_k(state, k)
        ranker = serving.ranker
        if ranker.checkpoint is None:
            return json_body(
                FeedResponse(
                    member_id=member_id,
                    items=_member_items(state, serving, member_id, k, flt),
                    ranking_note=f"retrieval order: {ranker.unavailable_reason}",
                    model_version=serving.model_version,
                )
            )
        pool = max(k, ranker.settings.feed_candidates)
        candidates = _member_items(state, serving, member_id, pool, flt)
        items = rank_items(ranker, member_id, candidates)[:k]
    return json_body(
        FeedResponse(
            member_id=member_id,
            items=items,
            ranking="gr",
            ranker_version=ranker.version,
            model_version=serving.model_version,
        )
    )


@router.post(
    "/v1/retrieve",
    response_model=RetrieveResponse,
    responses=error_responses(400, 404, 413, 422, 503),
)
def retrieve(request: Request, body: RetrieveRequest) -> Response:
    """kNN by a member's vector or by free text, optionally filtered."""
    state = ready_state(request)
    serving = state.serving
    k = _bounded_k(state, body.k)
    with state.metrics.query_duration.labels("retrieve").time():
        if body.member_id is not None:
            own = body.member_id if body.exclude_own_posts else None
            flt = _post_filter(state, body.filters, exclude_author=own)
            items = _member_items(state, serving, body.member_id, k, flt)
        else:
            text = _bounded_text(state, body.text or "")
            items = _text_items(serving, text, k, _post_filter(state, body.filters))
    return json_body(RetrieveResponse(items=items, model_version=serving.model_version))


@router.get("/v1/posts/{post_id}", response_model=PostInfo, responses=error_responses(404, 422))
def post_info(request: Request, post_id: Annotated[EntityId, Path()]) -> PostInfo:
    """An indexed post's attributes, versions and indexing time."""
    record = service_state(request).serving.store.post(post_id)
    if record is None:
        raise ApiError(404, "not_found", f"post {post_id!r} is not in the index")
    return PostInfo(post_id=post_id, **vars(record))


@router.get("/v1/stats", response_model=IndexStats)
def stats(request: Request) -> IndexStats:
    """Index size, readiness, consumer lag, recent freshness percentiles, member histories
    and the ranker."""
    state = service_state(request)
    serving = state.serving
    freshness = {e: serving.store.freshness.percentiles(e) for e in ("post", "member")}
    return IndexStats(
        ready=state.ready,
        applied=state.feed.applied,
        lag=state.feed.lag(),
        model_version=serving.model_version,
        backend=serving.store.backend.name,
        start=state.feed.plan.reason if state.feed.plan else "starting",
        freshness_seconds=freshness,
        history_members=len(state.histories),
        history_steps=state.histories.steps(),
        ranker_version=serving.ranker.version,
        ranker_note=serving.ranker.unavailable_reason,
        **serving.store.counts(),
    )


def _bounded_k(state: ServiceState, k: int) -> int:
    if k > state.settings.max_k:
        raise ApiError(422, "validation", f"k={k} is above the limit of {state.settings.max_k}")
    return k


def _post_filter(
    state: ServiceState, filters: SearchFilters, exclude_author: str | None = None
) -> PostFilter:
    limit = state.settings.max_excluded_posts
    if len(filters.exclude_post_ids) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"{len(filters.exclude_post_ids)} excluded posts; limit {limit}",
        )
    return filters.post_filter(frozenset([exclude_author] if exclude_author else []))


def _member_items(
    state: ServiceState, serving: ServingModel, member_id: str, k: int, flt: PostFilter
) -> list[FeedItem]:
    member = serving.store.member(member_id)
    if member is None:
        raise ApiError(404, "not_found", f"member {member_id!r} has no embedding in the index")
    query = member_query_vector(
        serving.store, state.histories, member_id, member.vector, state.settings.latest_weight
    )
    return _items(serving.store.search(query, k, flt))


def _bounded_text(state: ServiceState, text: str) -> str:
    limit = state.settings.max_text_chars
    if len(text) > limit:
        raise ApiError(413, "payload_too_large", f"text has {len(text)} characters; limit {limit}")
    return text


def _text_items(serving: ServingModel, text: str, k: int, flt: PostFilter) -> list[FeedItem]:
    query = serving.encoder.encode([text])[0]  # (dim,)
    return _items(serving.store.search(query, k, flt))


def _items(results: list[tuple[Hit, PostRecord]]) -> list[FeedItem]:
    return [
        FeedItem(
            post_id=hit.post_id,
            score=hit.score,
            author_id=_str_or_none(record.attrs.get("author_id")),
            format=_str_or_none(record.attrs.get("format")),
            language=_str_or_none(record.attrs.get("language")),
            created_at_ms=_int_or_none(record.attrs.get("created_at_ms")),
        )
        for hit, record in results
    ]


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
