"""The runner's only door to the API server (official ``kubernetes`` client, plain dicts).

Objects travel as the JSON the API server speaks (camelCase dicts), not as client models:
the pure modules and their tests read pods the way ``kubectl get -o json`` shows them. Every
call has a timeout so that a stuck connection cannot freeze a pod worker. ``get_*`` return
None for an object that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

Obj = dict[str, Any]
TIMEOUT = 15.0
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def _json(response: Any) -> Obj:
    data: Obj = json.loads(response.data)
    return data


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 404


def is_conflict(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 409


class Kube:
    """Typed-enough wrappers for the calls the runner makes."""

    def __init__(self, kubeconfig: str) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        # Every pod worker and prober may call at once; the default pool (5 per CPU) is small.
        configuration.connection_pool_maxsize = 64
        self.api_client = client.ApiClient(configuration)
        # Typed as Any on purpose: bodies and results are the API's JSON, not client models
        # (the client accepts dicts and, without preloading, returns the raw response).
        self.core: Any = client.CoreV1Api(self.api_client)
        self.coordination: Any = client.CoordinationV1Api(self.api_client)
        self.version: Any = client.VersionApi(self.api_client)

    @property
    def server(self) -> tuple[str, int]:
        """Host and port of the API server, for ``KUBERNETES_SERVICE_HOST``/``PORT``."""
        url = urlparse(self.api_client.configuration.host)
        return url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)

    def server_version(self) -> str:
        return str(_json(self.version.get_code(_preload_content=False)).get("gitVersion", ""))

    # -- pods ---------------------------------------------------------------------------------

    def list_pods(self, node: str) -> tuple[list[Obj], str]:
        """All pods bound to ``node`` and the list's resourceVersion (to watch from)."""
        listing = _json(
            self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={node}",
                _preload_content=False,
                _request_timeout=60,
            )
        )
        return list(listing.get("items") or []), str(listing["metadata"]["resourceVersion"])

    def watch_pods(self, node: str, resource_version: str, seconds: int) -> Iterator[Obj]:
        """Watch events (``{"type", "object"}``) for pods of ``node``; ends after ``seconds``.

        An ``ERROR`` event (e.g. 410 Gone) is yielded like any other: the caller re-lists.
        """
        response = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node}",
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            watch=True,
            _preload_content=False,
            _request_timeout=(10, seconds + 30),
        )
        try:
            for line in iter_resp_lines(response):
                if line:
                    event: Obj = json.loads(line)
                    yield event
        finally:
            response.close()
            response.release_conn()

    def patch_pod_status(self, namespace: str, name: str, status: Obj) -> None:
        # Strategic merge: conditions merge by type (others' conditions survive), container
        # statuses are replaced as a whole.
        self.core.patch_namespaced_pod_status(
            name,
            namespace,
            {"status": status},
            _content_type=STRATEGIC,
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's final delete: grace 0, only if it is still the same pod."""
        self.core.delete_namespaced_pod(
            name,
            namespace,
            body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )

    # -- what pods reference ---------------------------------------------------------------------

    def _get(self, method: Any, *args: str) -> Obj | None:
        try:
            return _json(method(*args, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_configmap(self, namespace: str, name: str) -> Obj | None:
        return self._get(self.core.read_namespaced_config_map, name, namespace)

    def get_secret(self, namespace: str, name: str) -> Obj | None:
        return self._get(self.core.read_namespaced_secret, name, namespace)

    def get_pvc(self, namespace: str, name: str) -> Obj | None:
        return self._get(self.core.read_namespaced_persistent_volume_claim, name, namespace)

    def get_pv(self, name: str) -> Obj | None:
        return self._get(self.core.read_persistent_volume, name)

    def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str | None,
        seconds: int,
        pod: tuple[str, str],
    ) -> tuple[str, float]:
        """A token bound to the pod (name, uid), and when it expires (epoch seconds)."""
        spec: Obj = {
            "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod[0], "uid": pod[1]},
        }
        if audience:
            spec["audiences"] = [audience]
        result = _json(
            self.core.create_namespaced_service_account_token(
                service_account,
                namespace,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        )
        status = result["status"]
        expires = datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
        return str(status["token"]), expires.timestamp()

    def create_event(self, namespace: str, event: Obj) -> None:
        self.core.create_namespaced_event(
            namespace, event, _preload_content=False, _request_timeout=TIMEOUT
        )

    # -- the node --------------------------------------------------------------------------------

    def get_node(self, name: str) -> Obj | None:
        return self._get(self.core.read_node, name)

    def create_node(self, node: Obj) -> None:
        self.core.create_node(node, _preload_content=False, _request_timeout=TIMEOUT)

    def patch_node(self, name: str, patch: Obj) -> None:
        self.core.patch_node(
            name, patch, _content_type=MERGE, _preload_content=False, _request_timeout=TIMEOUT
        )

    def patch_node_status(self, name: str, status: Obj) -> None:
        self.core.patch_node_status(
            name,
            {"status": status},
            _content_type=STRATEGIC,
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        return self._get(self.coordination.read_namespaced_lease, name, namespace)

    def create_lease(self, namespace: str, lease: Obj) -> None:
        self.coordination.create_namespaced_lease(
            namespace, lease, _preload_content=False, _request_timeout=TIMEOUT
        )

    def replace_lease(self, namespace: str, name: str, lease: Obj) -> Obj:
        return _json(
            self.coordination.replace_namespaced_lease(
                name, namespace, lease, _preload_content=False, _request_timeout=TIMEOUT
            )
        )
