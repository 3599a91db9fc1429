"""The plugin's few API calls, with the official client: get, list and merge-patch the modelops
kinds, and every failure turned into one sentence a person can act on."""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modelops import api

Obj = dict[str, Any]

KINDS = {info.plural: kind for kind, info in api.KINDS.items()}


class KubeError(Exception):
    """A request that could not be done, said for a person (no stack trace)."""


class Kube:
    """The modelops kinds in one namespace (or all, for listing) of one cluster."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        namespace: str | None,
        *,
        as_user: str | None = None,
    ) -> None:
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except (ConfigException, OSError, TypeError) as error:
            raise KubeError(f"cannot load the kubeconfig: {error}") from error
        if context is not None:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        self.namespace: str = namespace or active.get("context", {}).get("namespace") or "default"
        api_client = client.ApiClient()
        if as_user:
            api_client.set_default_header("Impersonate-User", as_user)
        self._api = client.CustomObjectsApi(api_client)

    def get(self, plural: str, name: str, *, what: str | None = None) -> Obj:
        """One object of this namespace; not found is a :class:`KubeError` naming it."""
        try:
            obj = self._api.get_namespaced_custom_object(
                api.GROUP, api.VERSION, self.namespace, plural, name
            )
        except ApiException as error:
            raise self._error(error, plural, name, what) from error
        return cast(Obj, obj)

    def list(self, plural: str, namespace: str | None, selector: str | None = None) -> list[Obj]:
        """Objects of a kind in ``namespace`` (None: every namespace), by label selector."""
        try:
            if namespace is None:
                out = self._api.list_cluster_custom_object(
                    api.GROUP, api.VERSION, plural, label_selector=selector
                )
            else:
                out = self._api.list_namespaced_custom_object(
                    api.GROUP, api.VERSION, namespace, plural, label_selector=selector
                )
        except ApiException as error:
            raise self._error(error, plural, None, None) from error
        return cast(Obj, out).get("items", [])  # type: ignore[no-any-return]

    def patch(self, plural: str, name: str, patch: Obj) -> Obj:
        """A JSON merge patch of one object, as the person running the plugin."""
        try:
            obj = self._api.patch_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                self.namespace,
                plural,
                name,
                patch,
                field_manager="kubectl-modelops",
                _content_type="application/merge-patch+json",
            )
        except ApiException as error:
            raise self._error(error, plural, name, None) from error
        return cast(Obj, obj)

    def get_cluster(self, plural: str, name: str) -> Obj:
        """One cluster-scoped object (a Quarantine); not found is a :class:`KubeError`."""
        try:
            obj = self._api.get_cluster_custom_object(api.GROUP, api.VERSION, plural, name)
        except ApiException as error:
            raise self._error(error, plural, name, f"{KINDS.get(plural, plural)} {name}") from error
        return cast(Obj, obj)

    def create_cluster(self, plural: str, body: Obj) -> Obj:
        """Create one cluster-scoped object, as the person running the plugin."""
        name = body["metadata"]["name"]
        try:
            obj = self._api.create_cluster_custom_object(
                api.GROUP, api.VERSION, plural, body, field_manager="kubectl-modelops"
            )
        except ApiException as error:
            if error.status == 409:
                raise KubeError(f"{KINDS.get(plural, plural)} {name} exists already") from error
            raise self._error(error, plural, name, f"{KINDS.get(plural, plural)} {name}") from error
        return cast(Obj, obj)

    def delete_cluster(self, plural: str, name: str) -> None:
        """Delete one cluster-scoped object."""
        try:
            self._api.delete_cluster_custom_object(api.GROUP, api.VERSION, plural, name)
        except ApiException as error:
            raise self._error(error, plural, name, f"{KINDS.get(plural, plural)} {name}") from error

    def _error(
        self, error: ApiException, plural: str, name: str | None, what: str | None
    ) -> KubeError:
        kind = KINDS.get(plural, plural)
        target = what or (f"{kind} {self.namespace}/{name}" if name else f"{kind} objects")
        if error.status == 404:
            return KubeError(f"{target} not found")
        message = error.reason
        with contextlib.suppress(TypeError, ValueError):  # not a Status: keep the reason
            message = json.loads(error.body or "").get("message", message)
        if error.status == 403:
            return KubeError(f"not allowed: {message}")
        return KubeError(f"{target}: {message}")
