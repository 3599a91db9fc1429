"""Which of the resources the operator watches the API server serves (API discovery)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def missing_resources(
    api: client.ApiClient, wanted: Mapping[str, Sequence[str]], timeout: float = 10.0
) -> list[str]:
    """The ``plural.group/version`` of every wanted resource that discovery does not list yet,
    ``wanted`` mapping ``group/version`` to plurals (blocking).

    A freshly started API server, or one whose CRDs were just created, answers discovery before
    it lists every resource; a group it does not know yet is a 404.
    """
    apis = client.CustomObjectsApi(api)
    missing = []
    for group_version, plurals in wanted.items():
        group, version = group_version.split("/")
        try:
            served = {
                r.name
                for r in apis.get_api_resources(group, version, _request_timeout=timeout).resources
            }
        except ApiException as e:
            if e.status != 404:
                raise
            served = set()
        missing += [f"{p}.{group_version}" for p in plurals if p not in served]
    return missing
