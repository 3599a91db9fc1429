"""A container's environment and command line, built from its spec like the kubelet does.

Precedence, lowest first: the runner's base variables (``PATH``, ``HOSTNAME``, ``POD_IP``,
``KUBERNETES_SERVICE_HOST``/``PORT``...), then ``envFrom`` sources in order, then ``env`` in
order. ``$(VAR)`` in an ``env`` value sees every variable defined before it; ``$(VAR)`` in
command and args sees the final environment. Service-link variables for other Services are
not injected: their ClusterIPs are not reachable on this machine.

ConfigMaps and Secrets are fetched by the caller (names from ``referenced_objects``) and passed
in, ``None`` meaning "not found"; that keeps this module free of I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.noderunner import fieldpath, quantity
from harness.noderunner.expansion import expand, expand_all

#: Commands that run the runner's own interpreter, so pods see the project's virtualenv.
PYTHON_NAMES = frozenset({"python", "python3"})


class ConfigError(Exception):
    """The container cannot be configured yet: kubelet reason ``CreateContainerConfigError``.

    Usually transient (a ConfigMap that does not exist yet); the runner retries.
    """


@dataclass(frozen=True)
class EnvInputs:
    """Everything besides the container spec that its environment depends on."""

    pod: Mapping[str, Any]
    pod_ip: str
    host_ip: str
    configmaps: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    allocatable: Mapping[str, str] = field(default_factory=dict)


def referenced_objects(container: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """Names of the ConfigMaps and Secrets the container's env and envFrom read."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for source in container.get("envFrom") or []:
        if source.get("configMapRef"):
            configmaps.add(source["configMapRef"].get("name", ""))
        if source.get("secretRef"):
            secrets.add(source["secretRef"].get("name", ""))
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        if value_from.get("configMapKeyRef"):
            configmaps.add(value_from["configMapKeyRef"].get("name", ""))
        if value_from.get("secretKeyRef"):
            secrets.add(value_from["secretKeyRef"].get("name", ""))
    return frozenset(configmaps), frozenset(secrets)


def decode_secret_value(encoded: str) -> str:
    """A Secret's ``data`` value as a string; undecodable bytes survive the round trip to exec."""
    return base64.b64decode(encoded).decode("utf-8", "surrogateescape")


def _namespace(inputs: EnvInputs) -> str:
    return str((inputs.pod.get("metadata") or {}).get("namespace", ""))


def _object_values(kind: str, name: str, inputs: EnvInputs) -> Mapping[str, str] | None:
    """The string values of a ConfigMap's ``data`` or a Secret's decoded ``data``."""
    store = inputs.configmaps if kind == "ConfigMap" else inputs.secrets
    obj = store.get(name)
    if obj is None:
        return None
    data = obj.get("data") or {}
    if kind == "Secret":
        return {key: decode_secret_value(value) for key, value in data.items()}
    return {key: str(value) for key, value in data.items()}


def _key_ref(kind: str, ref: Mapping[str, Any], inputs: EnvInputs) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    optional = bool(ref.get("optional"))
    values = _object_values(kind, name, inputs)
    if values is None:
        if optional:
            return None
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    if key not in values:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {_namespace(inputs)}/{name}")
    return values[key]


def _value_from(
    container: Mapping[str, Any], source: Mapping[str, Any], inputs: EnvInputs
) -> str | None:
    if source.get("fieldRef"):
        try:
            return fieldpath.resolve(
                inputs.pod, source["fieldRef"].get("fieldPath", ""), inputs.pod_ip, inputs.host_ip
            )
        except fieldpath.FieldPathError as e:
            raise ConfigError(str(e)) from None
    if source.get("resourceFieldRef"):
        ref = source["resourceFieldRef"]
        target = ref.get("containerName") or container.get("name")
        spec = inputs.pod.get("spec") or {}
        owner = next(
            (
                c
                for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                if c.get("name") == target
            ),
            container,
        )
        try:
            return quantity.resource_field_value(
                owner.get("resources"),
                ref.get("resource", ""),
                ref.get("divisor"),
                inputs.allocatable,
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if source.get("configMapKeyRef"):
        return _key_ref("ConfigMap", source["configMapKeyRef"], inputs)
    if source.get("secretKeyRef"):
        return _key_ref("Secret", source["secretKeyRef"], inputs)
    raise ConfigError(f"unsupported valueFrom source: {sorted(source)}")


def build_env(
    container: Mapping[str, Any], base: Mapping[str, str], inputs: EnvInputs
) -> dict[str, str]:
    """The container's final environment; ``ConfigError`` when a reference cannot be resolved."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref in (
            ("ConfigMap", source.get("configMapRef")),
            ("Secret", source.get("secretRef")),
        ):
            if not ref:
                continue
            values = _object_values(kind, ref.get("name", ""), inputs)
            if values is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, value in values.items():
                # The API server accepts any name; exec cannot represent one containing "=".
                if key and "=" not in prefix + key:
                    env[prefix + key] = value
    for var in container.get("env") or []:
        name = var.get("name", "")
        if var.get("valueFrom"):
            resolved = _value_from(container, var["valueFrom"], inputs)
            if resolved is None:
                continue
            env[name] = resolved
        else:
            env[name] = expand(str(var.get("value", "")), env)
    return env


def command_line(container: Mapping[str, Any], env: Mapping[str, str], python: str) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded; ``python``/``python3`` become ``python``.

    Images are ignored, so there is no image entrypoint to fall back on: ``args`` alone run as
    the command (Docker's rule for a CMD without ENTRYPOINT), and a container with neither is a
    ``ConfigError``.
    """
    command: Sequence[str] = container.get("command") or []
    args: Sequence[str] = container.get("args") or []
    argv = expand_all(list(command) + list(args), env)
    if not argv:
        raise ConfigError(
            "container has no command: the local runner ignores images, so set command or args"
        )
    if argv[0] in PYTHON_NAMES:
        argv[0] = python
    return argv
