"""The Starlette application: routes, bearer token, body limit, status codes, request logs.

Routes: ``POST /v1/assign``, ``GET /v1/segments``, ``GET /healthz``, ``GET /readyz``,
``GET /metrics``, ``POST /admin/reload``. Logs carry counts and timings, never a customer id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from segmenter.data import EventData
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter
from segmenter.service.batcher import MicroBatcher, Overloaded
from segmenter.service.holder import ModelHolder
from segmenter.service.metrics import ServiceMetrics
from segmenter.service.payload import PayloadError, parse_assign, parse_json

logger = logging.getLogger(__name__)

#: ``reasons(model, data, assignments) -> {user_id: [reason, ...]}``: explanations, when given
Reasons = Callable[[Segmenter, EventData, pl.DataFrame], dict[str, list[str]]]
Handler = Callable[[Request], Awaitable[Response]]
OPEN_ROUTES = frozenset({"/healthz", "/readyz"})
RESULT_COLUMNS = ("segment", "segment_name", "confidence", "distance", "value_tier", "taste_group")


@dataclass(frozen=True)
class ServiceOptions:
    """Limits and switches of one service (see ``python -m pipelines.serve --help``)."""

    token: str | None = None
    max_body_bytes: int = 2_000_000
    max_customers: int = 1_000
    max_events: int = 100_000
    max_wait_ms: float = 2.0
    max_batch: int = 256
    max_queue: int = 512
    queue_timeout_s: float = 1.0
    retry_after_s: int = 1
    reload_on_sighup: bool = False
    reasons: Reasons | None = None


def error(
    status: int,
    message: str,
    *,
    field: str | None = None,
    value: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "field": field, "value": value}}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body; past ``limit`` bytes (declared or sent) a 413 :class:`PayloadError`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadError(
            f"body of {declared} bytes is over the limit of {limit}",
            field="body",
            value=int(declared),
            status=413,
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(
                f"body is over the limit of {limit} bytes", field="body", value=size, status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(holder: ModelHolder, options: ServiceOptions | None = None) -> Starlette:
    """The service around ``holder`` (loaded in the background at start-up).

    Parameters
    ----------
    holder : ModelHolder
        The model to serve; ``/readyz`` answers 200 once its first load and warm-up finished.
    options : ServiceOptions, optional
        Limits, bearer token and switches.
    """
    opts = options or ServiceOptions()
    metrics = ServiceMetrics()

    def predict(data: EventData) -> pl.DataFrame:
        loaded = holder.current
        if loaded is None:
            raise Overloaded("model not loaded yet")
        return loaded.model.predict(data, map_coords=False)

    batcher = MicroBatcher(
        predict,
        max_wait_ms=opts.max_wait_ms,
        max_batch=opts.max_batch,
        max_queue=opts.max_queue,
        queue_timeout_s=opts.queue_timeout_s,
        on_batch=metrics.observe_batch,
    )

    async def reload(folder: str | Path | None) -> dict[str, Any]:
        try:
            loaded = await asyncio.to_thread(holder.reload, folder)
        except SegmenterError:
            metrics.reloads.labels("refused").inc()
            raise
        metrics.reloads.labels("ok").inc()
        return {"model": str(loaded.folder), "segments": len(loaded.segments)}

    async def first_load() -> None:
        if holder.current is not None:  # loaded before the app started
            return
        try:
            await reload(None)
        except SegmenterError as exc:
            logger.error("model not loaded: %s", exc)

    def on_sighup() -> None:
        async def run() -> None:
            try:
                await reload(None)
            except SegmenterError as exc:
                logger.error("reload refused, the old model keeps serving: %s", exc)

        asyncio.get_running_loop().create_task(run())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        loading = asyncio.create_task(first_load())
        if opts.reload_on_sighup:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            yield
        finally:
            if opts.reload_on_sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            loading.cancel()
            await batcher.stop()

    def guarded(route: str, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            response = await _answer(request, route, handler)
            seconds = time.perf_counter() - start
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(seconds)
            metrics.queue.set(batcher.pending)
            if route not in OPEN_ROUTES and route != "/metrics":
                logger.info(
                    json.dumps(
                        {
                            "route": route,
                            "status": response.status_code,
                            "ms": round(seconds * 1000, 2),
                            "request": request.state.request_id,
                        }
                    )
                )
            return response

        return endpoint

    async def _answer(request: Request, route: str, handler: Handler) -> Response:
        request.state.request_id = uuid.uuid4().hex[:12]
        if opts.token is not None and route not in OPEN_ROUTES:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {opts.token}".encode()):
                return error(
                    401,
                    "missing or wrong bearer token",
                    field="authorization",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        try:
            return await handler(request)
        except PayloadError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except Overloaded as exc:
            return error(
                503,
                f"overloaded: {exc}; retry later",
                headers={"Retry-After": str(opts.retry_after_s)},
            )
        except SegmenterError as exc:
            return error(422, str(exc))

    async def assign(request: Request) -> Response:
        if holder.current is None:
            raise Overloaded("model not loaded yet")
        body = parse_json(await read_body(request, opts.max_body_bytes))
        data = parse_assign(body, max_customers=opts.max_customers, max_events=opts.max_events)
        placed = await batcher.submit(data)
        loaded = holder.current
        reasons = {}
        if opts.reasons and loaded:  # on the model's thread, off the event loop
            reasons = await batcher.call(opts.reasons, loaded.model, data, placed)
        customers = []
        for row in placed.select("user_id", *RESULT_COLUMNS).to_dicts():
            if row["user_id"] in reasons:
                row["reasons"] = reasons[row["user_id"]]
            customers.append(row)
        model = str(loaded.folder) if loaded else None
        return JSONResponse({"model": model, "customers": customers})

    async def segments(request: Request) -> Response:
        loaded = holder.current
        if loaded is None:
            raise Overloaded("model not loaded yet")
        return JSONResponse({"model": str(loaded.folder), "segments": loaded.segments})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        loaded = holder.current
        if loaded is None:
            return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"ready": True, "model": str(loaded.folder)})

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def admin_reload(request: Request) -> Response:
        raw = await read_body(request, 10_000)
        body = parse_json(raw) if raw.strip() else {}
        folder = body.get("model") if isinstance(body, dict) else None
        if folder is not None and not isinstance(folder, str):
            raise PayloadError("'model' must be a folder path", field="model", value=folder)
        try:
            return JSONResponse({"reloaded": True, **await reload(folder)})
        except SegmenterError as exc:
            serving = holder.current
            return error(
                409,
                f"reload refused, the old model keeps serving: {exc}",
                field="model",
                value=folder or (serving and str(serving.folder)),
            )

    routes = [
        Route("/v1/assign", guarded("/v1/assign", assign), methods=["POST"]),
        Route("/v1/segments", guarded("/v1/segments", segments), methods=["GET"]),
        Route("/healthz", guarded("/healthz", healthz), methods=["GET"]),
        Route("/readyz", guarded("/readyz", readyz), methods=["GET"]),
        Route("/metrics", guarded("/metrics", metrics_route), methods=["GET"]),
        Route("/admin/reload", guarded("/admin/reload", admin_reload), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.holder, app.state.batcher, app.state.metrics = holder, batcher, metrics
    return app
