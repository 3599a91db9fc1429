"""The HTTP/JSON transport of the Open Inference Protocol v2, plus ``/metrics``.

Handlers are thin: read and parse the request, call the :class:`DataPlane`, serialise the
result. :func:`create_app` builds the application from settings and an injected registry;
:func:`serve` runs it until SIGTERM or SIGINT and then shuts down gracefully.

Every response the server writes, including those to malformed HTTP, is either a success or an
OIP error: ``Content-Type: application/json`` and ``{"error": "<message>"}``. Connections are
bounded in time (``header_timeout_seconds``, ``body_timeout_seconds``,
``idle_timeout_seconds``) so that slow or idle clients cannot hold them forever.
"""

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.log import access_logger
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from modelops.runtimes.server import codec
from modelops.runtimes.server.dataplane import DataPlane
from modelops.runtimes.server.errors import (
    ClientGoneError,
    InferenceError,
    PayloadTooLargeError,
    RequestTimeoutError,
)
from modelops.runtimes.server.metrics import ServerMetrics
from modelops.runtimes.server.model import ArtifactServedModel
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


class _Connection(web.RequestHandler):
    """aiohttp's handler of one client connection, with the limits aiohttp lacks.

    * **Header timeout.** From the first byte of a request, its headers must be complete
      within ``header_timeout`` seconds, or the connection is closed. aiohttp's keep-alive
      timer (``idle_timeout_seconds``) already closes connections that stay silent, and it also
      runs from the moment a connection opens, but bytes trickling in slowly (slowloris) would
      otherwise hold a connection for the whole idle timeout.
    * **Malformed HTTP** gets the OIP error body as exact JSON instead of aiohttp's plain text,
      and is logged at debug level, not as an exception with a traceback: a bad request line
      is the client's problem (port scanners, TLS spoken to a plain HTTP port).
    * **408** (body timeout, see :func:`_infer`) closes the connection at once instead of
      aiohttp lingering to read the rest of a body that is not coming.
    """

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        # True from complete headers until the response is written: bytes arriving meanwhile
        # are the body (or a pipelined request, which the idle timeout still bounds).
        self._handling = False

    def data_received(self, data: bytes) -> None:
        """Start the header deadline on the first bytes of a request, then parse them."""
        if data and not self._handling and self._header_deadline is None:
            self._header_deadline = asyncio.get_running_loop().call_later(
                self._header_timeout, self._headers_too_slow
            )
        super().data_received(data)

    def headers_received(self) -> None:
        """The application has a complete request (called by the middleware)."""
        self._handling = True
        self._cancel_header_deadline()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Write the response; after a 408 close the connection instead of lingering."""
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._handling = False
            if resp.status == HTTPStatus.REQUEST_TIMEOUT:
                self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not parse or hand to the application."""
        self._cancel_header_deadline()
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            logger.debug("Malformed HTTP request from %s: %s", request.remote, message)
        if request.writer.output_size > 0:
            # Part of a response is out already; there is no way to send another one.
            raise ConnectionError("Response already started, cannot send the error")
        phrase = HTTPStatus(status).phrase
        response = _error(status, f"Malformed HTTP request: {message}" if message else phrase)
        response.force_close()
        return response

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the header deadline; aiohttp cleans up the rest."""
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        logger.debug(
            "Closed the connection from %s: no complete request headers within %gs",
            self.peername,
            self._header_timeout,
        )
        self.force_close()

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None


class _Server(web.Server):
    """An aiohttp server whose connections are :class:`_Connection`."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        request_factory: Callable[..., web.BaseRequest],
        **connection_options: Any,
    ) -> None:
        super().__init__(handler, request_factory=request_factory)
        self._connection_options = connection_options

    def __call__(self) -> web.RequestHandler:
        """Make the protocol for a new connection (the event loop calls this)."""
        return _Connection(self, loop=asyncio.get_running_loop(), **self._connection_options)


class _Runner(web.AppRunner):
    """The application runner for :func:`serve`: connections are :class:`_Connection`, with
    the timeouts and access log of ``settings``."""

    def __init__(self, app: web.Application, settings: ServerSettings) -> None:
        super().__init__(app, shutdown_timeout=_CLEANUP_TIMEOUT_SECONDS)
        self._connection_options: dict[str, Any] = {
            "header_timeout": settings.header_timeout_seconds,
            # aiohttp's keep-alive timer runs whenever a connection waits for a request,
            # including before the first one: the idle timeout.
            "keepalive_timeout": settings.idle_timeout_seconds,
            "access_log": access_logger if settings.access_log else None,
        }

    async def _make_server(self) -> web.Server:
        # aiohttp has no option for the connection class. Let it start the application and
        # build its server, then serve the same handler with our connections.
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            **self._connection_options,
        )


DATAPLANE = web.AppKey("dataplane", DataPlane)
LOADING = web.AppKey("loading", ModelLoading)
_REGISTRY = web.AppKey("registry", CollectorRegistry)
_SETTINGS = web.AppKey("settings", ServerSettings)
_IN_FLIGHT = web.AppKey("in_flight", InFlight)
_JSON = "application/json"
# After the drain, how long aiohttp may still wait for a handler that started meanwhile before
# cancelling it. Positive: aiohttp treats a timeout of 0 as no timeout at all.
_CLEANUP_TIMEOUT_SECONDS = 1.0


def create_app(settings: ServerSettings, registry: CollectorRegistry) -> web.Application:
    """Build the server for ``settings``, registering its metrics on ``registry``.

    The model starts loading when the application starts (see :class:`ModelLoading`).
    """
    metrics = ServerMetrics(registry, model=settings.model_name, version=settings.model_version)
    model = ArtifactServedModel(settings.artifact_dir, settings.artifact_digest)
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
        observed = _observed(endpoint, handler, metrics, in_flight)
        app.router.add_route(method, path, observed)
        if method == "GET":
            # Probes and load balancers may check health with HEAD: the same answer, no body.
            app.router.add_route("HEAD", path, observed)
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
    runner = _Runner(app, settings)
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
        except ClientGoneError:
            # Nobody is left to answer and nothing went wrong here: no traceback, no 500.
            logger.debug(
                "Client %s closed the connection during %s %s",
                request.remote,
                request.method,
                request.path,
            )
            response = _error(ClientGoneError.status, "Client closed the connection")
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
    if isinstance(request.protocol, _Connection):
        request.protocol.headers_received()
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
    # Exactly application/json, without aiohttp's "; charset=utf-8": JSON is UTF-8 by
    # definition and the KServe client shows an empty error for any other content type.
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": _JSON}
    )


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
    settings = request.app[_SETTINGS]
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLargeError(
            f"Request body is larger than the maximum of {settings.max_body_bytes} bytes"
        ) from None
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {settings.body_timeout_seconds:g}s"
        ) from None
    except ConnectionError:
        raise ClientGoneError from None
    document, binary = codec.split_body(body, request.headers.get(codec.HEADER_LENGTH))
    payload = codec.parse_json(document)
    name = request.match_info["name"]
    encoded = request.app[DATAPLANE].infer(name, _version(request), payload, binary)
    if not encoded.binary:
        return web.Response(body=encoded.header, headers={"Content-Type": _JSON})
    return web.Response(
        body=encoded.header + encoded.binary,
        headers={
            "Content-Type": "application/octet-stream",
            codec.HEADER_LENGTH: str(len(encoded.header)),
        },
    )


async def _metrics(request: web.Request) -> web.Response:
    # generate_latest writes the classic text format (0.0.4) that every Prometheus and the
    # operator's drift collector parse; say so rather than prometheus-client's newer default.
    return web.Response(
        body=generate_latest(request.app[_REGISTRY]),
        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
    )
