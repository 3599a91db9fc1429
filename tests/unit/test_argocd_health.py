"""GitOps health of the four kinds, judged on real objects saved from a cluster.

``tests/fixtures/gitops/*.json`` are objects exactly as the API server returned them (minus
``managedFields``), saved by ``tests/cluster/test_gitops.py`` with the operator running (its
docstring says how to refresh them). For each one, :data:`EXPECTED` says what three tools make
of it:

* **Argo CD**: the Lua health scripts of ``manifests/gitops/argocd/health/``, run by a real Lua
  interpreter (Debian ``lua5.4``; Argo CD itself embeds a Lua 5.1, so the scripts stay within
  5.1). The object reaches the script as a global ``obj``, a Lua table literal generated here
  from the JSON, as Argo CD hands it over.
* **Flux**: the ``healthCheckExprs`` of ``manifests/gitops/flux/models-kustomization.yaml``,
  evaluated by the ``kstatus`` tool (``hack/kstatus``) the way kustomize-controller does.
* **kstatus** itself (``sigs.k8s.io/cli-utils``), what Flux without expressions, and other
  kstatus-based tools, conclude.

Missing tools fail the tests, never skip them: ``make tools`` builds ``kstatus``;
``apt-get install lua5.4`` (``.ci/run``) provides Lua.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import REPO
from tests.unit.test_helm import tool

ARGOCD = REPO / "manifests" / "gitops" / "argocd"
FLUX_EXPRS = REPO / "manifests" / "gitops" / "flux" / "models-kustomization.yaml"
FIXTURES = REPO / "tests" / "fixtures" / "gitops"
SCRIPTS = {
    "Model": ARGOCD / "health" / "model.lua",
    "ModelVersion": ARGOCD / "health" / "modelversion.lua",
    "TrainingRun": ARGOCD / "health" / "trainingrun.lua",
    "DriftPolicy": ARGOCD / "health" / "driftpolicy.lua",
}

Obj = dict[str, Any]


@dataclass(frozen=True)
class Health:
    """How each tool should judge one object."""

    argocd: str
    """The Argo CD script's hs.status."""
    flux: str
    """The Flux healthCheckExprs verdict (Unknown: an expression cannot be evaluated yet, as
    before the first status; kustomize-controller keeps waiting then)."""
    kstatus: str
    """What kstatus.Compute says: the operator's Reconciling and Stalled conditions and the
    CRDs' default status.observedGeneration of 0 make it agree with the other two."""


EXPECTED: dict[str, Health] = {
    # Before the operator's first reconcile: the CRDs default status.observedGeneration to 0.
    "model-new": Health("Progressing", "InProgress", "InProgress"),
    "modelversion-new": Health("Progressing", "InProgress", "InProgress"),
    "trainingrun-new": Health("Progressing", "InProgress", "InProgress"),
    "driftpolicy-new": Health("Progressing", "InProgress", "InProgress"),
    # Spec changed, not yet observed: everyone waits.
    "model-stale": Health("Progressing", "InProgress", "InProgress"),
    # TrainingRun: Reconciling while pending or running, Stalled when failed.
    "trainingrun-suspended": Health("Suspended", "Current", "Current"),
    "trainingrun-running": Health("Progressing", "InProgress", "InProgress"),
    "trainingrun-succeeded": Health("Healthy", "Current", "Current"),
    "trainingrun-failed": Health("Degraded", "Failed", "Failed"),
    # ModelVersion: a retired version is a settled record; a failed rollout is Stalled.
    "modelversion-registered": Health("Healthy", "Current", "Current"),
    "modelversion-serving": Health("Healthy", "Current", "Current"),
    "modelversion-rollout-failed": Health("Degraded", "Failed", "Failed"),
    "modelversion-retired": Health("Healthy", "Current", "Current"),
    # Model.
    "model-registry-only": Health("Healthy", "Current", "Current"),
    "model-no-version": Health("Progressing", "InProgress", "InProgress"),
    "model-version-not-found": Health("Progressing", "InProgress", "InProgress"),
    "model-rolling-out": Health("Progressing", "InProgress", "InProgress"),
    "model-serving": Health("Healthy", "Current", "Current"),
    "model-rollout-failed": Health("Degraded", "Failed", "Failed"),
    # DriftPolicy: its own health (can it evaluate?), not the model's.
    "driftpolicy-not-ready": Health("Degraded", "InProgress", "InProgress"),
}


# -- running the tools ------------------------------------------------------------------------


def lua_binary() -> str:
    found = shutil.which("lua5.4")
    if found is None:
        pytest.fail("lua5.4 is missing: apt-get install lua5.4 (the .ci/run system packages)")
    return found


def to_lua(value: Any) -> str:
    """A Lua expression for a JSON value: objects and arrays become tables (arrays 1-based),
    null becomes nil, as Argo CD converts them."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_string(k)}] = {to_lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def lua_string(text: str) -> str:
    """A quoted Lua string literal of the UTF-8 bytes of ``text``: printable ASCII as is,
    every other byte (and quotes, backslashes) as a decimal escape."""
    out = []
    for byte in text.encode():
        if 32 <= byte < 127 and byte not in (34, 92):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def argocd_health(obj: Obj) -> tuple[str, str]:
    """(status, message) of the Argo CD health script of ``obj``'s kind."""
    script = SCRIPTS[obj["kind"]]
    program = (
        f"obj = {to_lua(obj)}\n"
        f"local hs = assert(loadfile({lua_string(str(script))}))()\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    out = subprocess.run(
        [lua_binary(), "-"],
        input=program.encode(),
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    status, _, message = out.stdout.decode().partition("\n")
    return status, message


def kstatus(obj: Obj) -> Obj:
    """The ``kstatus`` tool's verdicts on ``obj``: ``status`` (kstatus) and ``flux``."""
    out = subprocess.run(
        [str(tool("kstatus")), "-flux", str(FLUX_EXPRS)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: Obj = json.loads(out.stdout)
    return result


def fixture(name: str) -> Obj:
    obj: Obj = json.loads((FIXTURES / f"{name}.json").read_text())
    return obj


# -- the fixtures -----------------------------------------------------------------------------


def test_every_fixture_has_expectations_and_back() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)


def test_every_kind_and_every_argocd_state_is_covered() -> None:
    kinds = {fixture(name)["kind"] for name in EXPECTED}
    assert kinds == set(SCRIPTS)
    assert {h.argocd for h in EXPECTED.values()} == {
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
    }


def test_fixtures_are_real_objects() -> None:
    for name in EXPECTED:
        obj = fixture(name)
        assert obj["apiVersion"] == "modelops.dev/v1alpha1", name
        assert obj["metadata"]["uid"], name
        assert obj["metadata"]["resourceVersion"], name
        assert "managedFields" not in obj["metadata"], name


# -- verdicts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_argocd(name: str) -> None:
    status, message = argocd_health(fixture(name))
    assert status == EXPECTED[name].argocd
    assert message, "every verdict says why"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_flux(name: str) -> None:
    result = kstatus(fixture(name))
    assert result.get("flux") == EXPECTED[name].flux, result.get("fluxError")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kstatus(name: str) -> None:
    assert kstatus(fixture(name))["status"] == EXPECTED[name].kstatus


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if not n.endswith("-new")))
def test_an_unobserved_spec_change_is_progressing_everywhere(name: str) -> None:
    obj = fixture(name)
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    if obj["kind"] == "TrainingRun" and obj["spec"].get("suspend"):
        assert argocd_health(obj)[0] == "Suspended"
    else:
        assert argocd_health(obj)[0] == "Progressing"
    result = kstatus(obj)
    assert result["status"] == "InProgress"
    assert result["flux"] == "InProgress"


# -- the shipped configuration ---------------------------------------------------------------


def test_argocd_cm_patch_carries_the_scripts() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"] == {
        f"resource.customizations.health.modelops.dev_{kind}": path.read_text()
        for kind, path in SCRIPTS.items()
    }


def test_argocd_component_merges_the_scripts_into_argocd_cm(tmp_path: Path) -> None:
    # As in Argo CD's upstream install.yaml: argocd-cm without a namespace, set by the
    # kustomization that installs it.
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n"
        "data:\n  url: https://argocd.example.com\n"
    )
    component = Path(*[".."] * len(tmp_path.parts[1:])) / ARGOCD.relative_to("/")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"namespace": "argocd", "resources": ["cm.yaml"], "components": [str(component)]}
        )
    )
    out = subprocess.run(
        [str(tool("kubectl")), "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    cm = yaml.safe_load(out.stdout)
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert cm["data"] == {"url": "https://argocd.example.com", **patch["data"]}


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_scripts_stay_within_lua_5_1(kind: str) -> None:
    """Argo CD runs gopher-lua (Lua 5.1): no goto, labels, integer division or bitwise
    operators, no 5.2+ library names."""
    source = SCRIPTS[kind].read_text()
    code = re.sub(r"--[^\n]*", "", source)  # comments
    code = re.sub(r'"(\\.|[^"\\])*"', '""', code)  # strings
    for construct in (r"\bgoto\b", r"::\w+::", r"//", r"[^~]~[^=]", r"<<", r">>", r"&", r"\|"):
        assert not re.search(construct, code), f"{kind}: {construct}"
    for name in ("table.unpack", "utf8.", "math.type", "string.pack", "load("):
        assert name not in code, f"{kind}: {name}"
    out = subprocess.run(
        ["luac5.4", "-p", str(SCRIPTS[kind])], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_lua_literals_round_trip_odd_strings() -> None:
    obj = {
        "kind": "Model",
        "apiVersion": "modelops.dev/v1alpha1",
        "metadata": {"name": 'q"uote\\back\nline é', "generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True", "message": 'q"\\\n é'}],
        },
    }
    assert argocd_health(obj) == ("Healthy", 'q"\\\n é')
