"""``python -m modelops``: run the operator against the current kubeconfig or in-cluster."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from modelops.observability import OperatorMetrics
from modelops.settings import OperatorSettings

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def parse_args(argv: Sequence[str] | None) -> OperatorSettings:
    """Flags override ``MODELOPS_*`` environment variables."""
    parser = argparse.ArgumentParser(prog="python -m modelops", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; globs such as 'ml-*' allowed)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", default=None, help="watch every namespace"
    )
    parser.add_argument("--metrics-port", type=int, help="port of /metrics (default 8080)")
    parser.add_argument("--health-port", type=int, help="port of /healthz (default 8081)")
    parser.add_argument("--workers", type=int, help="concurrent reconciles (default 8)")
    election = parser.add_argument_group("leader election")
    election.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        help="reconcile only while holding the leader Lease (default on; turn it off only "
        "for a single process)",
    )
    election.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        help="namespace of the Lease (default: the pod's, else the first watched namespace)",
    )
    election.add_argument(
        "--leader-election-lease", metavar="NAME", help="name of the Lease (modelops-leader)"
    )
    election.add_argument(
        "--lease-duration",
        type=int,
        dest="lease_duration_seconds",
        metavar="S",
        help="seconds before a silent leader's Lease may be taken (default 15)",
    )
    election.add_argument(
        "--renew-deadline",
        type=float,
        dest="renew_deadline_seconds",
        metavar="S",
        help="seconds the leader may fail to renew before it exits (default 10)",
    )
    election.add_argument(
        "--retry-period",
        type=float,
        dest="retry_period_seconds",
        metavar="S",
        help="seconds between renewals and takeover attempts (default 2)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "verbose"}
    settings = OperatorSettings(**overrides)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    if not args.verbose:
        # kopf logs every watch event it hands over; our own logs say what changed.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Start metrics, then hand over to kopf until SIGTERM/SIGINT."""
    settings = parse_args(argv)
    # Importing registers every handler with kopf.
    import modelops.handlers.wiring  # noqa: F401

    metrics = OperatorMetrics.create()
    start_http_server(settings.metrics_port, settings.metrics_address, registry=metrics.registry)
    namespaces = settings.namespaces or ([settings.pod_namespace] if settings.pod_namespace else [])
    if not settings.all_namespaces and not namespaces:
        logging.error(
            "Say which namespaces to watch: --namespace NS (repeatable) or "
            "--all-namespaces (or MODELOPS_NAMESPACES / MODELOPS_ALL_NAMESPACES)"
        )
        return 2
    if settings.leader_election and settings.lease_namespace() is None:
        logging.error(
            "Say where the leader Lease lives: --leader-election-namespace NS (or "
            "MODELOPS_LEADER_ELECTION_NAMESPACE), or run a single process with "
            "--no-leader-election"
        )
        return 2
    logging.info(
        "Watching %s", "all namespaces" if settings.all_namespaces else ", ".join(namespaces)
    )
    kopf.run(
        standalone=True,
        clusterwide=settings.all_namespaces,
        namespaces=() if settings.all_namespaces else namespaces,
        liveness_endpoint=f"http://{settings.health_address}:{settings.health_port}/healthz",
        memo=kopf.Memo(settings=settings, metrics=metrics),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
