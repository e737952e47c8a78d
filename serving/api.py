"""The HTTP API: ``create_app(settings)`` returns the FastAPI application.

Endpoints (OpenAPI docs at ``/docs``):

- ``GET /v1/users/{user_id}/recommendations?k=&exclude_seen=``: from the stored history;
- ``POST /v1/recommendations``: from a posted history (anonymous sessions);
- ``GET /v1/items/{item_id}/similar?k=``;
- ids may hold any printable character but whitespace: ``/`` in an id is sent as ``%2F`` (the
  routes match the decoded path, so an id with ``/`` routes too);
- filters on all three (:mod:`learnrec.serving.filters`): ``exclude`` (item ids, repeatable),
  ``category`` (exact), ``attribute`` (``name=value``, repeatable, all must match); in the
  posted body ``exclude_item_ids``, ``category``, ``attributes`` (an object);
- ``GET /healthz`` (the process answers), ``GET /readyz`` (a model version and its index are
  loaded), ``GET /metrics`` (Prometheus).

Bad input gets a 4xx whose ``detail`` says what is wrong (401 without a valid API key when keys
are configured, 413 for a body over the cap: :mod:`learnrec.serving.guard`); 503 (with ``Retry-After``)
until a model version is loaded, and when too many requests are in flight
(:mod:`learnrec.serving.shedding`).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from learnrec.serving.filters import ItemFilter, parse_attributes
from learnrec.serving.guard import RequestGuard, parse_keys
from learnrec.serving.metrics import MetricsMiddleware
from learnrec.serving.recommender import Answer, Source, UnknownItems
from learnrec.serving.service import ServingService
from learnrec.serving.shedding import LoadShedder
from learnrec.serving.versions import NotReady
from learnrec.shared.config import Settings, get_settings
from learnrec.shared.schemas import MAX_ID_CHARS, Identifier

MAX_K = 1000
DEFAULT_K = 10
MAX_POSTED_ITEMS = 500
ID_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"

PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
K = Annotated[int, Query(ge=1, le=MAX_K, description="how many items to return")]
Exclude = Annotated[list[Identifier], Query(max_length=MAX_POSTED_ITEMS, description="item ids never to return")]
Category = Annotated[str | None, Query(min_length=1, max_length=500, description="only items of this category")]
Attribute = Annotated[list[Annotated[str, Query(pattern=r"^[^=]+=")]],
                      Query(max_length=20, description="only items with attribute name=value (all)")]


class ScoredItem(BaseModel):
    item_id: str
    score: float = Field(description="inner product of the user and item vectors: the towers' cosine, "
                                     "plus the version's content blend times the content cosine (docs/MODEL.md)")


class Recommendations(BaseModel):
    model_version: str
    source: Source = Field(description="personal: from the history; popular: no usable history")
    items: list[ScoredItem]
    unknown_item_ids: list[str] = Field(default_factory=list, description="ignored posted ids")


class SessionRequest(BaseModel):
    item_ids: list[Identifier] = Field(
        min_length=1, max_length=MAX_POSTED_ITEMS, description="the session's items, oldest first"
    )
    k: int = Field(default=DEFAULT_K, ge=1, le=MAX_K)
    exclude_seen: bool = True
    exclude_item_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_POSTED_ITEMS,
                                               description="item ids never to return")
    category: str | None = Field(default=None, min_length=1, max_length=500, description="only items of this category")
    attributes: dict[str, str] = Field(default_factory=dict, max_length=20,
                                       description="only items with every one of these attribute values")

    def item_filter(self) -> ItemFilter:
        return ItemFilter(frozenset(self.exclude_item_ids), self.category, tuple(self.attributes.items()))


def _query_filter(exclude: list[str], category: str | None, attribute: list[str]) -> ItemFilter:
    """The filter of a GET request's query; 422 for an attribute that is not name=value."""
    try:
        return ItemFilter(frozenset(exclude), category, parse_attributes(attribute))
    except ValueError as err:
        raise HTTPException(422, str(err)) from None


def _response(answer: Answer) -> Recommendations:
    return Recommendations(
        model_version=answer.version,
        source=answer.source,
        items=[ScoredItem(item_id=i, score=s) for i, s in answer.items],
        unknown_item_ids=answer.unknown,
    )


def _validation_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    problems = [
        {"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in err.errors()
    ]
    detail = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
    return JSONResponse({"detail": detail, "problems": problems}, status_code=422)


def _not_ready(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status_code=503, headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over a :class:`ServingService` started and stopped with the app's lifespan."""
    service = ServingService(settings or get_settings())
    recommender = service.recommender

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        yield
        await service.stop()

    app = FastAPI(title="learnrec", summary="Streaming LEARN recommendations", lifespan=lifespan)
    app.state.service = service
    cfg = service.settings
    app.add_middleware(LoadShedder, max_in_flight=cfg.serving.max_in_flight, max_queue_ms=cfg.serving.max_queue_ms,
                       registry=service.metrics.registry)
    app.add_middleware(RequestGuard, keys=parse_keys(cfg.serving.api_keys.get_secret_value()),
                       max_body_bytes=cfg.serving.max_body_bytes, metrics_open=cfg.serving.metrics_open)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotReady, _not_ready)

    def count(answer: Answer) -> Recommendations:
        service.metrics.answers.labels(answer.source).inc()
        return _response(answer)

    @app.get("/v1/users/{user_id:path}/recommendations", response_model=Recommendations)
    async def user_recommendations(
        user_id: PathId, k: K = DEFAULT_K, exclude_seen: bool = True,
        exclude: Exclude = [], category: Category = None, attribute: Attribute = [],  # noqa: B006
    ) -> Recommendations:
        """Items for a user, from the history the stream keeps; popular items without one."""
        item_filter = _query_filter(exclude, category, attribute)
        return count(await recommender.for_user(user_id, k, exclude_seen, item_filter))

    @app.post("/v1/recommendations", response_model=Recommendations)
    async def session_recommendations(request: Annotated[SessionRequest, Body()]) -> Recommendations:
        """Items for an anonymous session; unknown ids are ignored and listed (422 if all are)."""
        try:
            answer = await recommender.for_items(request.item_ids, request.k, request.exclude_seen,
                                                 request.item_filter())
        except UnknownItems as err:
            raise HTTPException(422, f"{err}: {request.item_ids[:10]}") from None
        return count(answer)

    @app.get("/v1/items/{item_id:path}/similar", response_model=Recommendations)
    async def similar_items(
        item_id: PathId, k: K = DEFAULT_K,
        exclude: Exclude = [], category: Category = None, attribute: Attribute = [],  # noqa: B006
    ) -> Recommendations:
        """The items nearest to an item in the serving model version."""
        item_filter = _query_filter(exclude, category, attribute)
        try:
            return count(await recommender.similar(item_id, k, item_filter))
        except UnknownItems as err:
            raise HTTPException(404, str(err)) from None

    @app.get("/healthz")
    async def healthz() -> dict:
        """The process is up (not necessarily ready)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """200 once a model version and its index are loaded (and Redis is not being rebuilt),
        else 503."""
        current = service.holder.current
        if current is None:
            return JSONResponse({"ready": False, "detail": "no model version loaded"}, 503)
        if service.holder.unavailable is not None:
            return JSONResponse({"ready": False, "detail": service.holder.unavailable}, 503)
        return JSONResponse(
            {"ready": True, "model_version": current.version, "items": len(current.index)}
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
