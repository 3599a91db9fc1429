"""The generated CRDs: structural, documented, up to date, and wrapped right for Helm.

Everything here reads the generator's in-memory output or the files in the repository; the
API server's own checks of the same CRDs are in tests/cluster/test_api_admission.py.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.api import KINDS, crdgen

ROOT = Path(__file__).resolve().parents[2]
CRDS = {kind: crdgen.build_crd(info) for kind, info in KINDS.items()}
# Short names of widely installed CRDs and built-in resources that ours must not shadow.
WELL_KNOWN_SHORT_NAMES = {
    "tr", "pr", "t", "p", "ct", "tt", "tb",  # Tekton
    "wf", "cwf", "wftmpl", "ro", "app", "appproj",  # Argo
    "ksvc", "kcfg", "rt", "isvc", "inferenceservice",  # Knative, KServe
    "cert", "certs", "cr", "crs", "iss", "ciss",  # cert-manager
    "prom", "am", "smon", "pmon", "promrule", "probe",  # Prometheus Operator
    "po", "svc", "deploy", "rs", "ds", "sts", "cm", "ns", "no", "pv", "pvc", "sa", "ep",  # core
    "ing", "netpol", "pdb", "hpa", "cj", "ev", "limits", "quota", "crd", "crds", "sc", "csr",
}  # fmt: skip


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path; ``[]`` marks list items, ``{}`` map values."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")
    for option in node.get("anyOf", []):
        yield from walk(option, f"{path}|")


def offending(kind: str, check: Any) -> list[str]:
    """Paths of the schema nodes of ``kind`` for which ``check(path, node)`` is false."""
    return [f"{kind}{path}" for path, node in walk(schema_of(kind)) if not check(path, node)]


def test_generated_files_are_up_to_date():
    stale = crdgen.stale_files(ROOT, crdgen.render_all(ROOT))
    assert not stale, f"run `make generate`; stale: {[str(p) for p in stale]}"


def test_generation_is_deterministic():
    assert crdgen.render_all(ROOT) == crdgen.render_all(ROOT)


def test_every_generated_file_says_do_not_edit():
    for path, content in crdgen.render_all(ROOT).items():
        # A Helm template starts with its guard, so the header is its second line.
        header = content.splitlines()[1 if content.startswith("{{") else 0]
        assert "DO NOT EDIT" in header, path


def structural(path: str, node: dict[str, Any]) -> bool:
    if any(key in node for key in ("$ref", "$defs", "title", "const", "allOf", "oneOf", "not")):
        return False
    if ("properties" in node and "additionalProperties" in node) or node.get("nullable"):
        return False
    if "anyOf" in node:
        # The only union a structural schema may hold; its branches carry types only.
        return node.get("x-kubernetes-int-or-string") is True and node["anyOf"] == [
            {"type": "integer"},
            {"type": "string"},
        ]
    return "type" in node


@pytest.mark.parametrize("kind", KINDS)
def test_every_node_is_structural(kind):
    assert offending(kind, structural) == []


@pytest.mark.parametrize("kind", KINDS)
def test_free_form_objects_are_local_and_deliberate(kind):
    schema = schema_of(kind)
    assert "x-kubernetes-preserve-unknown-fields" not in schema
    assert "x-kubernetes-preserve-unknown-fields" not in schema["properties"]["spec"]
    assert "x-kubernetes-preserve-unknown-fields" not in schema["properties"]["status"]
    free = {path for path, node in walk(schema) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert free <= {
        ".spec.hyperparameters",
        ".spec.provenance.parameters",
        ".spec.training.hyperparameters",
    }
    for path in free:
        node = dict(walk(schema))[path]
        assert node["type"] == "object"
        assert "maxProperties" in node, "bounded, so CEL cost estimates stay finite"


def described(path: str, node: dict[str, Any]) -> bool:
    if path in ("", ".metadata", ".metadata.name") or path.endswith(("[]", "{}", "|")):
        return True  # The kind's own description covers the root; Kubernetes owns metadata.
    text = node.get("description", "")
    return bool(text.strip()) and "\n" not in text.replace("\n\n", "")


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_has_a_description(kind):
    assert offending(kind, described) == []
    assert schema_of(kind)["description"]


def bounded(path: str, node: dict[str, Any]) -> bool:
    """Unbounded strings, lists and maps make CEL cost estimates explode: bound all in spec."""
    if not path.startswith(".spec") or path.endswith("|") or "enum" in node:
        return True
    limit = {"string": "maxLength", "array": "maxItems"}.get(node.get("type", ""))
    if node.get("type") == "object" and "additionalProperties" in node:
        limit = "maxProperties"
    return limit is None or limit in node


@pytest.mark.parametrize("kind", KINDS)
def test_strings_and_lists_are_bounded(kind):
    assert offending(kind, bounded) == []


@pytest.mark.parametrize("kind", KINDS)
def test_cel_rules_have_messages_naming_their_field(kind):
    rules = [
        rule
        for _, node in walk(schema_of(kind))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert rules
    for rule in rules:
        assert rule["message"], rule
        field = rule.get("fieldPath", "").split(".")[-1]
        assert field in rule["message"], rule


def test_modelversion_spec_is_wholly_immutable():
    spec = schema_of("ModelVersion")["properties"]["spec"]
    assert {"rule": "self == oldSelf"}.items() <= spec["x-kubernetes-validations"][0].items()
    assert "spec" in schema_of("ModelVersion")["required"]


def test_trainingrun_fields_that_shape_the_job_are_immutable():
    rules = schema_of("TrainingRun")["properties"]["spec"]["x-kubernetes-validations"]
    immutable = {rule["fieldPath"].lstrip(".") for rule in rules if "oldSelf" in rule["rule"]}
    assert {"image", "command", "args", "dataset", "modelRef", "output"} <= immutable
    assert not {"suspend", "activeDeadlineSeconds", "ttlSecondsAfterFinished"} & immutable


def test_model_training_template_is_not_immutable():
    template = schema_of("Model")["properties"]["spec"]["properties"]["training"]
    for path, node in walk(template):
        for rule in node.get("x-kubernetes-validations", []):
            assert "oldSelf" not in rule["rule"], path


@pytest.mark.parametrize("kind", KINDS)
def test_status_conditions_are_a_list_map_keyed_by_type(kind):
    status = schema_of(kind)["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason"}
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["observedGeneration"]["type"] == "integer"


@pytest.mark.parametrize("kind", KINDS)
def test_names_and_registry(kind):
    info = KINDS[kind]
    crd = CRDS[kind]
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{info.plural}.modelops.dev"
    assert names["categories"] == ["modelops"]
    assert crd["spec"]["scope"] == ("Cluster" if kind == "Quarantine" else "Namespaced")
    assert not set(names["shortNames"]) & WELL_KNOWN_SHORT_NAMES
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[-1] == "Age"
    assert info.model.model_fields["kind"].default == kind


def test_short_names_are_unique_across_kinds():
    short = [s for info in KINDS.values() for s in info.short_names]
    assert len(short) == len(set(short))
    assert KINDS["TrainingRun"].short_names == ("trun",)


def test_name_limits_are_root_rules():
    for kind in ("Model", "TrainingRun", "DriftPolicy", "ModelVersion"):
        rules = schema_of(kind)["x-kubernetes-validations"]
        assert any("self.metadata.name" in rule["rule"] for rule in rules), kind
    assert "size() <= 40" in schema_of("Model")["x-kubernetes-validations"][0]["rule"]


def test_kustomization_lists_every_crd():
    kustomization = yaml.safe_load((ROOT / "crds/kustomization.yaml").read_text())
    assert kustomization["resources"] == [crdgen.crd_file(i).name for i in KINDS.values()]


@pytest.mark.parametrize("kind", KINDS)
def test_helm_copy_is_the_crd_behind_the_chart_switches(kind):
    info = KINDS[kind]
    template = (ROOT / crdgen.helm_crd_file(info)).read_text()
    lines = template.splitlines()
    assert lines[0] == "{{- if .Values.crds.enabled }}"
    assert lines[-1] == "{{- end }}"
    # The annotations come from the chart's helper (tests/unit/test_helm.py renders them).
    assert "  annotations:\n" + crdgen.HELM_CRD_ANNOTATIONS in template
    body = "\n".join(lines[1:-1]).replace("  annotations:\n" + crdgen.HELM_CRD_ANNOTATIONS, "")
    assert "{{" not in body
    assert yaml.safe_load(body) == CRDS[kind]


def test_check_mode_reports_stale_and_unexpected_files(tmp_path, capsys):
    files = crdgen.render_all(tmp_path)
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    crdgen.write(tmp_path, files)
    assert crdgen.stale_files(tmp_path, files) == []
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "crds/modelops.dev_retired.yaml").write_text("kind: Old\n")
    crd = crdgen.crd_file(KINDS["Model"])
    (tmp_path / crd).write_text("edited\n")
    assert crdgen.stale_files(tmp_path, files) == sorted(
        [Path("crds/modelops.dev_retired.yaml"), crd]
    )
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "make generate" in capsys.readouterr().err
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert not (tmp_path / "crds/modelops.dev_retired.yaml").exists()
    assert crdgen.stale_files(tmp_path, files) == []
