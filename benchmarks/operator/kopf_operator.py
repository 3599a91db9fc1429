"""The minimal kopf operator: what kopf with its defaults costs for the same work.

``--mode create``: one ``@kopf.on.create`` handler on TrainingRuns that creates the Job modelops
would build (``modelops.core.trainingrun.build_job``) with the official client. ``--mode watch``
(the memory comparison): no-op ``@kopf.on.event`` handlers on the kinds modelops watches — the
four custom kinds, and Jobs, Deployments, Pods and Services carrying the operator's labels — and
a count of the objects seen, written every second to ``--status-file``.

kopf's defaults are kept except two that modelops changes as well: Kubernetes Events about its
own handlers are not posted, and per-event log lines are not printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config

from modelops import api
from modelops.core.labels import MODEL, TRAININGRUN
from modelops.core.trainingrun import build_job

USER_AGENT = "bench-kopf-operator"
WATCHED = (
    ("modelops.dev/v1alpha1", "trainingruns", None),
    ("modelops.dev/v1alpha1", "models", None),
    ("modelops.dev/v1alpha1", "modelversions", None),
    ("modelops.dev/v1alpha1", "driftpolicies", None),
    ("batch/v1", "jobs", TRAININGRUN),
    ("apps/v1", "deployments", MODEL),
    ("v1", "pods", MODEL),
    ("v1", "services", MODEL),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", action="append", required=True)
    parser.add_argument("--health-port", type=int, required=True)
    parser.add_argument("--mode", choices=["create", "watch"], default="create")
    parser.add_argument("--status-file", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    configuration = client.Configuration()
    config.load_kube_config(args.kubeconfig, client_configuration=configuration)
    api_client = client.ApiClient(configuration)
    api_client.user_agent = USER_AGENT
    batch = client.BatchV1Api(api_client)

    @kopf.on.login()
    def login(**_: Any) -> kopf.ConnectionInfo:
        """kopf connects with the same server and client certificate."""
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False

    if args.mode == "create":

        @kopf.on.create("modelops.dev/v1alpha1", "trainingruns")
        def create_job(body: kopf.Body, namespace: str, **_: Any) -> None:
            job = build_job(api.TrainingRun.model_validate(dict(body)))
            batch.create_namespaced_job(namespace, job, _preload_content=False)

    else:
        seen: set[str] = set()

        def on_event(body: kopf.Body, type: str | None, **_: Any) -> None:
            if type == "DELETED":
                seen.discard(body["metadata"]["uid"])
            else:
                seen.add(body["metadata"]["uid"])

        for group_version, plural, label in WATCHED:
            labels = {label: kopf.PRESENT} if label else None
            kopf.on.event(group_version, plural, labels=labels)(on_event)

        def report() -> None:
            assert args.status_file is not None
            while True:
                tmp = args.status_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"objects": len(seen)}))
                tmp.replace(args.status_file)
                time.sleep(1)

        threading.Thread(target=report, daemon=True).start()

    kopf.run(
        standalone=True,
        namespaces=args.namespace,
        liveness_endpoint=f"http://127.0.0.1:{args.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
