"""Command line of the local runner.

``python -m harness.noderunner --kubeconfig PATH --node-name NAME --state-dir DIR
[--ip-prefix 127.77|auto]`` runs the node agent until SIGTERM or SIGINT; it then stops every
container it started and exits 0.

``python -m harness.noderunner logs --state-dir DIR NAMESPACE/POD [-c CONTAINER] [--previous]
[--tail N] [-f]`` prints a container's output from the state directory, also after the pod is
gone (without ``-c``: the pod's first container).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from harness.noderunner import logfiles


def _run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.noderunner",
        description="Run the pods bound to a Node as local processes (see docs/local-runner.md).",
    )
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server")
    parser.add_argument("--node-name", required=True, help="name of the Node to register")
    parser.add_argument("--state-dir", type=Path, required=True, help="logs, volumes, certificate")
    parser.add_argument(
        "--ip-prefix",
        default="auto",
        help="pod addresses: 127.N or 127.N.M, or auto (a prefix no other runner here holds)",
    )
    parser.add_argument("--cpu", default="8", help="the node's cpu capacity")
    parser.add_argument("--memory", default="16Gi", help="the node's memory capacity")
    parser.add_argument("--max-pods", default="110", help="the node's pod capacity")
    parser.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        default=5.0,
        help="on SIGTERM, how long containers get between SIGTERM and SIGKILL",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname).1s%(asctime)s %(threadName)s] %(message)s",
        datefmt="%m%d %H:%M:%S",
    )
    # Imported here: the kubernetes client takes a while to import, `logs` does not need it.
    from harness.noderunner.agent import Agent, AgentConfig
    from harness.noderunner.ipam import Allocator
    from harness.noderunner.kube import Kube

    if args.ip_prefix != "auto":
        try:
            Allocator(args.ip_prefix)
        except ValueError as e:
            parser.error(str(e))

    cfg = AgentConfig(
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        state_dir=args.state_dir.resolve(),
        ip_prefix=args.ip_prefix,
        capacity={"cpu": args.cpu, "memory": args.memory, "pods": args.max_pods},
        shutdown_grace=args.shutdown_grace_seconds,
    )
    stop = threading.Event()

    def _stop(signum: int, _: object) -> None:
        logging.getLogger("harness.noderunner").info(
            "Received %s; stopping node %s", signal.Signals(signum).name, cfg.node_name
        )
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    Agent(cfg, Kube(args.kubeconfig)).run(stop)
    return 0


def _default_container(directory: Path) -> str | None:
    try:
        spec = json.loads((directory / "pod.json").read_text())["spec"]
        return str(spec["containers"][0]["name"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _logs(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.noderunner logs", description="Print a container's output."
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("pod", metavar="NAMESPACE/POD")
    parser.add_argument("-c", "--container")
    parser.add_argument("-p", "--previous", action="store_true", help="the run before")
    parser.add_argument("--tail", type=int, help="only the last N lines")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing (Ctrl-C)")
    args = parser.parse_args(argv)
    namespace, _, name = args.pod.rpartition("/")
    directory = logfiles.find_pod_dir(args.state_dir, namespace or "default", name)
    if directory is None:
        print(
            f"pod {namespace or 'default'}/{name} has no logs in {args.state_dir}", file=sys.stderr
        )
        return 1
    container = args.container or _default_container(directory)
    if container is None:
        print("cannot tell the pod's first container: pass -c", file=sys.stderr)
        return 1
    path = logfiles.log_path(directory, container, args.previous)
    if not path.exists():
        print(f"no log of container {container} in {directory}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    with path.open("rb") as f:
        out.write(logfiles.tail(f.read(), args.tail))
        out.flush()
        try:
            while args.follow:
                chunk = f.read(65536)
                if chunk:
                    out.write(chunk)
                    out.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch: ``logs ...`` prints logs, anything else runs the agent."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["logs"]:
        return _logs(args[1:])
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
