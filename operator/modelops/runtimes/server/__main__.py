"""Entry point: ``python -m modelops.runtimes.server``, configured by ``MODELOPS_SERVER_*``."""

import asyncio
import logging
import sys

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from pydantic import ValidationError

from modelops.runtimes.server import app
from modelops.runtimes.server.settings import ServerSettings


def main() -> int:
    """Read settings from the environment and serve until SIGTERM; return the exit code.

    Returns 2 without serving when the settings are invalid (a missing or malformed
    ``MODELOPS_SERVER_*`` variable), so a misconfigured pod fails visibly instead of starting.
    """
    try:
        settings = ServerSettings()
    except ValidationError as error:
        print(f"Invalid server settings (MODELOPS_SERVER_* variables):\n{error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    registry = CollectorRegistry()
    # The standard process metrics, on our registry instead of the global default one.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    asyncio.run(app.serve(settings, registry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
