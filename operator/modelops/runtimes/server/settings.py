"""Settings of the model server, read from the environment (prefix ``MODELOPS_SERVER_``).

The operator sets these in the serving Deployment's pod template; ``docs/server.md`` lists them.
Only :func:`modelops.runtimes.server.__main__.main` builds a :class:`ServerSettings` from the
environment; everything else receives the instance, so tests construct it with keywords.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops.api import artifact as contract


class ServerSettings(BaseSettings):
    """Everything the server needs to serve one version of one model."""

    model_config = SettingsConfigDict(
        env_prefix="MODELOPS_SERVER_",
        # ``host`` reads two environment variables through aliases; keywords still use the name.
        validate_by_name=True,
        frozen=True,
    )

    model_name: str = Field(min_length=1)
    """Name of the served model (the Model object's name); the ``{name}`` in ``/v2/models/{name}``.
    Requests for any other name get 404."""

    model_version: str = Field(min_length=1)
    """Version served (the ModelVersion's ``spec.version``); ``/v2/models/{name}/versions/{v}``
    with any other ``v`` gets 404."""

    artifact_dir: Path = Path("/artifacts")
    """Directory holding ``manifest.json``, ``model.json`` and ``reference.json`` (the mounted
    artifact volume)."""

    artifact_digest: str = Field(pattern=contract.DIGEST_PATTERN)
    """Expected digest of the artifact, ``sha256:<hex>`` of the bytes of ``manifest.json``: the
    ModelVersion's ``spec.artifact.digest``. The server never becomes ready if it differs."""

    host: str = "0.0.0.0"  # a pod must accept traffic from outside itself
    """Address to listen on: all of the pod's addresses by default, so that the Service, the
    kubelet's probes and ``kubectl port-forward`` (which dials 127.0.0.1 inside the pod) all
    reach the server."""

    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port for the inference API and ``/metrics``; 0 picks a free port (tests)."""

    max_batch_size: int = Field(default=1024, ge=1)
    """Largest number of rows accepted in one inference request; larger batches get 413."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    """Largest request body accepted, in bytes; larger bodies get 413."""

    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long a client may take to send a request's headers, from its first byte; then the
    connection is closed. Bounds slowloris clients, which trickle header bytes to hold a
    connection (and a file descriptor) open; a real client sends its headers in one go."""

    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a client may take to send an inference request's body once its headers have
    arrived; then it gets 408 and the connection is closed. Generous for a body of
    ``max_body_bytes`` on any working network."""

    idle_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a connection may wait for a request, whether freshly opened or kept alive
    after a response, before the server closes it. Above the idle time of the common client
    pools (httpx keeps idle connections 5 s) so that clients close first and do not race the
    server with a request on a connection it is closing."""

    retired: bool = False
    """Set when the served version is retired: the server then refuses to load the artifact and
    never becomes ready (the same as a ``RETIRED`` marker file in the artifact directory)."""

    shutdown_timeout_seconds: float = Field(default=20.0, ge=0)
    """After SIGTERM, how long in-flight requests may take to finish before their connections
    are closed. Keep it below the pod's ``terminationGracePeriodSeconds``."""

    access_log: bool = False
    """Log one line per request. Off by default: probes and scrapes would drown the log and
    formatting a line per request costs latency on the hot path."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the server's log."""
