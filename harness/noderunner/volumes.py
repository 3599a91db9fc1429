"""Pod volumes as host directories, and the files the runner writes into some of them.

Each volume is backed by a directory (``VolumePlan``):

* ``emptyDir``: ``<pod-dir>/volumes/<name>`` (per pod, removed with the pod);
* ``hostPath``: the host path itself;
* ``persistentVolumeClaim``: the directory of the bound PersistentVolume (its ``hostPath`` or
  ``local`` path) or ``<state-dir>/pvc/<namespace>/<claim>`` when there is none, shared by every
  pod that uses the claim (the caller resolves it);
* ``configMap``, ``secret``, ``downwardAPI``, ``projected``: ``<pod-dir>/volumes/<name>``,
  filled with the files ``render`` computes and mounted read-only, as the kubelet does.

Anything else (``nfs``, ``csi``, ``ephemeral``...) is ``UnsupportedVolumeError``. This module
is pure: objects, tokens and claim paths are looked up by the caller.
"""

from __future__ import annotations

import base64
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.noderunner import fieldpath, quantity
from harness.noderunner.expansion import expand

RENDERED = ("configMap", "secret", "downwardAPI", "projected")
DIRECTORY_BACKED = ("emptyDir", "hostPath", "persistentVolumeClaim")
DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
ENV_PREFIX = "MODELOPS_VOLUME_"


class UnsupportedVolumeError(ValueError):
    """The pod asks for a volume feature the runner does not implement (permanent)."""


class VolumeNotReadyError(RuntimeError):
    """A volume cannot be set up yet, e.g. its ConfigMap does not exist (the runner retries)."""


@dataclass(frozen=True)
class VolumePlan:
    """The host path behind one pod volume."""

    name: str
    kind: str
    path: Path
    read_only: bool = False

    @property
    def rendered(self) -> bool:
        """Whether the runner writes the content (rather than the pod)."""
        return self.kind in RENDERED


@dataclass(frozen=True)
class FileContent:
    """One file of a rendered volume."""

    data: bytes
    mode: int = DEFAULT_MODE


@dataclass(frozen=True)
class TokenRequest:
    """A service-account token a projected volume asks for (the key of ``RenderInputs.tokens``)."""

    audience: str | None
    expiration_seconds: int


@dataclass(frozen=True)
class References:
    """The API objects and tokens that the pod's rendered volumes read."""

    configmaps: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    tokens: frozenset[TokenRequest] = frozenset()


@dataclass(frozen=True)
class RenderInputs:
    """What rendering needs besides the volume: the pod and the objects it references."""

    pod: Mapping[str, Any]
    pod_ip: str
    host_ip: str
    configmaps: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    tokens: Mapping[TokenRequest, str] = field(default_factory=dict)
    allocatable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mount:
    """A bind mount of ``source`` (host) at ``target`` (the container's view).

    ``volume`` names the pod volume it comes from; empty for the runner's own files.
    """

    source: str
    target: str
    read_only: bool = False
    volume: str = ""


def volume_kind(volume: Mapping[str, Any]) -> str:
    """The volume's source type (the one key besides ``name``)."""
    kinds = [k for k in volume if k != "name"]
    return kinds[0] if len(kinds) == 1 else "/".join(sorted(kinds)) or "none"


def env_name(volume: str) -> str:
    """``MODELOPS_VOLUME_<NAME>``: where a volume is when there is no mount namespace."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def plan(
    pod: Mapping[str, Any], pod_dir: Path, claim_path: Callable[[str], Path]
) -> dict[str, VolumePlan]:
    """A plan per volume of the pod; ``UnsupportedVolumeError`` for the first that cannot work."""
    plans: dict[str, VolumePlan] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name, kind = volume.get("name", ""), volume_kind(volume)
        if kind in RENDERED or kind == "emptyDir":
            plans[name] = VolumePlan(name, kind, pod_dir / "volumes" / name, kind in RENDERED)
        elif kind == "hostPath":
            plans[name] = VolumePlan(name, kind, Path(volume["hostPath"]["path"]))
        elif kind == "persistentVolumeClaim":
            source = volume[kind]
            plans[name] = VolumePlan(
                name, kind, claim_path(source.get("claimName", "")), bool(source.get("readOnly"))
            )
        else:
            raise UnsupportedVolumeError(
                f'volume "{name}": {kind} volumes are not supported by the local runner'
            )
        if kind == "projected":
            for source in volume[kind].get("sources") or []:
                _check_projection(name, source)
    return plans


def _check_projection(volume: str, source: Mapping[str, Any]) -> None:
    known = ("configMap", "secret", "downwardAPI", "serviceAccountToken")
    unknown = [k for k in source if k not in known]
    if unknown:
        raise UnsupportedVolumeError(
            f'volume "{volume}": projected {unknown[0]} sources are not supported '
            "by the local runner"
        )


def _token_request(source: Mapping[str, Any]) -> TokenRequest:
    return TokenRequest(
        source.get("audience") or None,
        int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS),
    )


def references(pod: Mapping[str, Any]) -> References:
    """Every ConfigMap, Secret and token that rendering the pod's volumes reads."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    tokens: set[TokenRequest] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        projected = volume.get("projected")
        sources: Iterable[Mapping[str, Any]] = (
            (projected.get("sources") or []) if projected else [volume]
        )
        for source in sources:
            if source.get("configMap"):
                configmaps.add(source["configMap"].get("name", ""))
            if source.get("secret"):
                secret = source["secret"]
                secrets.add(secret.get("secretName") or secret.get("name", ""))
            if source.get("serviceAccountToken"):
                tokens.add(_token_request(source["serviceAccountToken"]))
    return References(frozenset(configmaps), frozenset(secrets), frozenset(tokens))


def _safe_relative(path: str, what: str) -> str:
    normal = posixpath.normpath(path)
    if not path or path.startswith("/") or normal == ".." or normal.startswith("../"):
        raise UnsupportedVolumeError(f"{what}: {path!r} must be a relative path without '..'")
    return normal


def _key_files(
    kind: str,
    source: Mapping[str, Any],
    inputs: RenderInputs,
    default_mode: int,
) -> dict[str, FileContent]:
    name = source.get("name") or source.get("secretName") or ""
    store = inputs.configmaps if kind == "configMap" else inputs.secrets
    obj = store.get(name)
    label = "configmap" if kind == "configMap" else "secret"
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeNotReadyError(f'{label} "{name}" not found')
    values: dict[str, bytes] = {}
    if kind == "configMap":
        values.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        values.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    else:
        values.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
    items = source.get("items")
    if not items:
        return {key: FileContent(data, default_mode) for key, data in values.items()}
    files: dict[str, FileContent] = {}
    for item in items:
        key = item.get("key", "")
        if key not in values:
            if source.get("optional"):
                continue
            raise VolumeNotReadyError(
                f"configmap references non-existent config key: {key}"
                if kind == "configMap"
                else f"references non-existent secret key: {key}"
            )
        path = _safe_relative(item.get("path", key), f"{label} {name} item {key}")
        files[path] = FileContent(values[key], int(item.get("mode") or default_mode))
    return files


def _downward_files(
    items: Iterable[Mapping[str, Any]], inputs: RenderInputs, default_mode: int
) -> dict[str, FileContent]:
    files: dict[str, FileContent] = {}
    spec = inputs.pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    for item in items:
        path = _safe_relative(item.get("path", ""), "downwardAPI item")
        if item.get("fieldRef"):
            try:
                value = fieldpath.resolve(
                    inputs.pod, item["fieldRef"].get("fieldPath", ""), inputs.pod_ip, inputs.host_ip
                )
            except fieldpath.FieldPathError as e:
                raise UnsupportedVolumeError(str(e)) from None
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            owner: Mapping[str, Any] = next(
                (c for c in containers if c.get("name") == ref.get("containerName")), {}
            )
            try:
                value = quantity.resource_field_value(
                    owner.get("resources"),
                    ref.get("resource", ""),
                    ref.get("divisor"),
                    inputs.allocatable,
                )
            except ValueError as e:
                raise UnsupportedVolumeError(str(e)) from None
        else:
            raise UnsupportedVolumeError(
                f"downwardAPI item {path}: needs fieldRef or resourceFieldRef"
            )
        files[path] = FileContent(value.encode(), int(item.get("mode") or default_mode))
    return files


def render(volume: Mapping[str, Any], inputs: RenderInputs) -> dict[str, FileContent]:
    """The files of a ``configMap``/``secret``/``downwardAPI``/``projected`` volume, by path.

    ``VolumeNotReadyError`` when a non-optional object or key is missing (the kubelet keeps the pod
    in ``ContainerCreating`` and retries; so does the runner).
    """
    kind = volume_kind(volume)
    source = volume[kind]
    mode = int(source.get("defaultMode") or DEFAULT_MODE)
    if kind in ("configMap", "secret"):
        return _key_files(kind, source, inputs, mode)
    if kind == "downwardAPI":
        return _downward_files(source.get("items") or [], inputs, mode)
    if kind != "projected":
        raise UnsupportedVolumeError(f'volume "{volume.get("name")}": {kind} is not rendered')
    files: dict[str, FileContent] = {}
    for projection in source.get("sources") or []:
        if projection.get("configMap"):
            files.update(_key_files("configMap", projection["configMap"], inputs, mode))
        elif projection.get("secret"):
            files.update(_key_files("secret", projection["secret"], inputs, mode))
        elif projection.get("downwardAPI"):
            files.update(
                _downward_files(projection["downwardAPI"].get("items") or [], inputs, mode)
            )
        elif projection.get("serviceAccountToken"):
            token_source = projection["serviceAccountToken"]
            path = _safe_relative(token_source.get("path", ""), "serviceAccountToken path")
            token = inputs.tokens.get(_token_request(token_source))
            if token is None:
                raise VolumeNotReadyError(f"no service account token for {path}")
            files[path] = FileContent(token.encode(), mode)
    return files


def container_mounts(
    container: Mapping[str, Any], plans: Mapping[str, VolumePlan], env: Mapping[str, str]
) -> list[Mount]:
    """The bind mounts of one container: volume (or its ``subPath``) at ``mountPath``.

    ``subPathExpr`` is expanded with the container's environment. ``UnsupportedVolumeError`` for a
    mount of a volume the pod does not declare or a sub-path that escapes the volume.
    """
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        name = vm.get("name", "")
        if name not in plans:
            raise UnsupportedVolumeError(f'volumeMount "{name}": no such volume in the pod')
        volume = plans[name]
        sub = vm.get("subPath") or expand(vm.get("subPathExpr") or "", env)
        source = volume.path
        if sub:
            source = source / _safe_relative(sub, f'volumeMount "{name}" subPath')
        read_only = bool(vm.get("readOnly")) or volume.read_only
        mounts.append(Mount(str(source), vm.get("mountPath", ""), read_only, name))
    return mounts
