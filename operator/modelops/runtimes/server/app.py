"""The HTTP/JSON transport of the Open Inference Protocol v2, plus ``/metrics``.

Handlers are thin: read and parse the request, call the :class:`DataPlane`, serialise the
result. :func:`create_app` builds the application from settings and an injected registry;
:func:`serve` runs it until SIGTERM or SIGINT and then shuts down gracefully.
"""

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.log import access_logger
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from modelops.runtimes.server.dataplane import DataPlane
from modelops.runtimes.server.errors import BadRequestError, InferenceError, PayloadTooLargeError
from modelops.runtimes.server.metrics import ServerMetrics
from modelops.runtimes.server.model import LinearServedModel
from modelops.runtimes.server.settings import ServerSettings

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]
_NextHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ModelLoading:
    """The background task that loads the model once the application has started.

    Loading runs in the background so that ``/v2/health/live`` answers while a large artifact
    is being hashed. Tests await :meth:`wait` instead of polling readiness.
    """

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        """Return once loading has finished, whether the model was loaded or refused."""
        if self.task is None:
            raise RuntimeError("The application has not been started")
        await asyncio.shield(self.task)


class InFlight:
    """Counts requests whose handler is running, so that shutdown can wait for them.

    aiohttp's own graceful shutdown closes every connection first and from then on ignores
    bytes arriving on it (aio-libs/aiohttp#2298), so a request whose body is still being
    received would hang until the timeout and be dropped. :func:`serve` instead stops
    accepting, waits here until no handler runs, and only then lets aiohttp close connections.
    """

    def __init__(self) -> None:
        self.count = 0
        #: Set on shutdown: responses then close their connection, so clients reconnect to
        #: another replica instead of reusing a connection to this one.
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A handler starts."""
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A handler has built its response."""
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no handler is running."""
        await self._idle.wait()


DATAPLANE = web.AppKey("dataplane", DataPlane)
LOADING = web.AppKey("loading", ModelLoading)
_REGISTRY = web.AppKey("registry", CollectorRegistry)
_SETTINGS = web.AppKey("settings", ServerSettings)
_IN_FLIGHT = web.AppKey("in_flight", InFlight)
# After the drain, how long aiohttp may still wait for a handler that started meanwhile before
# cancelling it. Positive: aiohttp treats a timeout of 0 as no timeout at all.
_CLEANUP_TIMEOUT_SECONDS = 1.0


def create_app(settings: ServerSettings, registry: CollectorRegistry) -> web.Application:
    """Build the server for ``settings``, registering its metrics on ``registry``.

    The model starts loading when the application starts (see :class:`ModelLoading`).
    """
    metrics = ServerMetrics(registry, model=settings.model_name, version=settings.model_version)
    model = LinearServedModel(settings.artifact_dir, settings.artifact_digest)
    dataplane = DataPlane(settings, model, metrics)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_json_errors])
    app[DATAPLANE] = dataplane
    app[LOADING] = ModelLoading()
    app[_REGISTRY] = registry
    app[_SETTINGS] = settings
    app[_IN_FLIGHT] = in_flight = InFlight()
    routes: list[tuple[str, str, str, Handler]] = [
        ("GET", "/v2/health/live", "live", _live),
        ("GET", "/v2/health/ready", "ready", _ready),
        ("GET", "/v2", "server_metadata", _server_metadata),
        ("GET", "/v2/models/{name}", "model_metadata", _model_metadata),
        ("GET", "/v2/models/{name}/versions/{version}", "model_metadata", _model_metadata),
        ("GET", "/v2/models/{name}/ready", "model_ready", _model_ready),
        ("GET", "/v2/models/{name}/versions/{version}/ready", "model_ready", _model_ready),
        ("POST", "/v2/models/{name}/infer", "infer", _infer),
        ("POST", "/v2/models/{name}/versions/{version}/infer", "infer", _infer),
        ("GET", "/v2/models/{name}/versions/{version}/reference", "reference", _reference),
        ("GET", "/metrics", "metrics", _metrics),
    ]
    for method, path, endpoint, handler in routes:
        app.router.add_route(method, path, _observed(endpoint, handler, metrics, in_flight))
    app.cleanup_ctx.append(_load_model)
    return app


async def serve(settings: ServerSettings, registry: CollectorRegistry) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully.

    On the signal the listening socket is closed (no new connections) and requests in flight,
    including those whose body is still arriving, get up to ``shutdown_timeout_seconds`` to
    finish (see :class:`InFlight`); requests arriving meanwhile on open keep-alive connections
    are answered with ``Connection: close``. Then every connection is closed and the coroutine
    returns, so that the process exits 0.
    """
    app = create_app(settings, registry)
    runner = web.AppRunner(
        app,
        access_log=access_logger if settings.access_log else None,
        shutdown_timeout=_CLEANUP_TIMEOUT_SECONDS,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        for address in runner.addresses:
            logger.info(
                "Serving model %s version %s on http://%s:%d",
                settings.model_name,
                settings.model_version,
                address[0],
                address[1],
            )
        received = await _wait_for_signal(signal.SIGTERM, signal.SIGINT)
        logger.info(
            "Received %s, finishing in-flight requests for up to %gs",
            received.name,
            settings.shutdown_timeout_seconds,
        )
        await _drain(app[_IN_FLIGHT], site, settings.shutdown_timeout_seconds)
    finally:
        await runner.cleanup()
    logger.info("Stopped serving model %s version %s", settings.model_name, settings.model_version)


async def _drain(in_flight: InFlight, site: web.BaseSite, grace_seconds: float) -> None:
    in_flight.draining = True
    await site.stop()
    try:
        async with asyncio.timeout(grace_seconds):
            await in_flight.wait_idle()
    except TimeoutError:
        logger.warning(
            "Shutdown timeout of %gs reached with %d requests in flight, closing them",
            grace_seconds,
            in_flight.count,
        )


async def _wait_for_signal(*signals: signal.Signals) -> signal.Signals:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def handle(signum: signal.Signals) -> None:
        if not received.done():
            received.set_result(signum)

    for signum in signals:
        loop.add_signal_handler(signum, handle, signum)
    try:
        return await received
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _load_model(app: web.Application) -> AsyncIterator[None]:
    loading = app[LOADING]
    loading.task = asyncio.create_task(app[DATAPLANE].load())
    yield
    loading.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loading.task


def _observed(
    endpoint: str, handler: Handler, metrics: ServerMetrics, in_flight: InFlight
) -> Handler:
    """Wrap ``handler``: turn data-plane errors into OIP error bodies, count and time it, and
    track it in ``in_flight`` for graceful shutdown."""

    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        in_flight.enter()
        try:
            response = await handler(request)
        except InferenceError as error:
            response = _error(error.status, str(error))
        except Exception:
            logger.exception("Failed to handle %s %s", request.method, request.path)
            response = _error(500, "Internal server error")
        finally:
            in_flight.leave()
        if in_flight.draining:
            response.force_close()
        metrics.observe_request(endpoint, response.status, time.perf_counter() - started)
        return response

    return handle


@web.middleware
async def _json_errors(request: web.Request, handler: _NextHandler) -> web.StreamResponse:
    # Routing errors (unknown path, wrong method) are raised by aiohttp before any handler runs;
    # give them the OIP error body too.
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = _error(error.status, f"{error.reason}: {request.method} {request.path}")
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _version(request: web.Request) -> str | None:
    return request.match_info.get("version")


async def _live(request: web.Request) -> web.Response:
    # Answering at all proves the process is alive; a refused model must not fail liveness,
    # or the kubelet would restart the pod in a loop (docs/server.md, "Readiness").
    return _json({"live": True})


async def _ready(request: web.Request) -> web.Response:
    ready = request.app[DATAPLANE].ready()
    return _json({"ready": ready}, 200 if ready else 503)


async def _server_metadata(request: web.Request) -> web.Response:
    return _json(request.app[DATAPLANE].server_metadata())


async def _model_metadata(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return _json(request.app[DATAPLANE].model_metadata(name, _version(request)))


async def _model_ready(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ready = request.app[DATAPLANE].model_ready(name, _version(request))
    return _json({"name": name, "ready": ready}, 200 if ready else 503)


async def _reference(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return _json(request.app[DATAPLANE].reference(name, _version(request)))


async def _infer(request: web.Request) -> web.Response:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLargeError(
            f"Request body is larger than the maximum of {request.app[_SETTINGS].max_body_bytes} "
            "bytes"
        ) from None
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise BadRequestError(f"Request body is not valid JSON: {error}") from None
    name = request.match_info["name"]
    return _json(request.app[DATAPLANE].infer(name, _version(request), payload))


async def _metrics(request: web.Request) -> web.Response:
    # generate_latest writes the classic text format (0.0.4) that every Prometheus and the
    # operator's drift collector parse; say so rather than prometheus-client's newer default.
    return web.Response(
        body=generate_latest(request.app[_REGISTRY]),
        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
    )
