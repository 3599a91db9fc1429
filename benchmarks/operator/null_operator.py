"""The null operator: the least any operator must do for a TrainingRun, as a floor to compare with.

One list+watch of TrainingRuns in one namespace (official kubernetes client); each new run is
parsed and its Job built exactly as modelops builds it (``modelops.core.trainingrun.build_job``)
and created by one of ``--workers`` threads. Nothing else: no status, no events, no cache of
children. Responses are not deserialised into client models (``_preload_content=False``).

Usage: ``python null_operator.py --kubeconfig K --namespace NS --ready-file F``; the ready file
appears once the initial list is done.
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from modelops import api
from modelops.core.trainingrun import build_job

USER_AGENT = "bench-null-operator"
log = logging.getLogger("null-operator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config.load_kube_config(args.kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = args.workers + 1
    api_client = client.ApiClient(configuration)
    api_client.user_agent = USER_AGENT
    custom, batch = client.CustomObjectsApi(api_client), client.BatchV1Api(api_client)
    work: queue.Queue[dict[str, Any]] = queue.Queue()

    def worker() -> None:
        while True:
            raw = work.get()
            job = build_job(api.TrainingRun.model_validate(raw))
            try:
                batch.create_namespaced_job(args.namespace, job, _preload_content=False)
            except ApiException as e:
                if e.status != 409:  # 409: created before a restart
                    log.warning("Could not create Job %s: %s", job["metadata"]["name"], e.reason)

    for _ in range(args.workers):
        threading.Thread(target=worker, daemon=True).start()
    plural = ("modelops.dev", "v1alpha1", args.namespace, "trainingruns")
    version = None
    while True:
        if version is None:
            listed = custom.list_namespaced_custom_object(*plural)
            for raw in listed["items"]:
                work.put(raw)
            args.ready_file.touch()
            version = listed["metadata"]["resourceVersion"]
        stream = watch.Watch()
        try:
            for event in stream.stream(
                custom.list_namespaced_custom_object,
                *plural,
                resource_version=version,
                timeout_seconds=300,
            ):
                if event["type"] == "ADDED":
                    work.put(event["object"])
            version = stream.resource_version
        except ApiException as e:
            if e.status != 410:
                raise
            version = None  # the watch expired: list again (a run seen twice meets a 409)


if __name__ == "__main__":
    main()
