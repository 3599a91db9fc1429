"""The pydantic models: wire format, defaults that agree with the CRDs, and the validators
that mirror the CEL rules (so the operator refuses what the API server refuses)."""

import copy
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from modelops import api
from modelops.api import KINDS, crdgen

DIGEST = "sha256:" + "ab" * 32
TEMPLATE = {
    "image": "trainer:1",
    "dataset": {"uri": "pvc://datasets/iris.csv"},
    "output": {"pvc": {"claimName": "models"}},
}
MINIMAL: dict[str, dict[str, Any]] = {
    "Model": {"spec": {}},
    "ModelVersion": {
        "metadata": {"name": "iris-v1"},
        "spec": {
            "modelRef": {"name": "iris"},
            "version": "v1",
            "artifact": {"uri": "pvc://models/iris/v1", "digest": DIGEST, "format": "x/v1"},
        },
    },
    "TrainingRun": {"spec": {"modelRef": {"name": "iris"}, **TEMPLATE}},
    "DriftPolicy": {"spec": {"modelRef": {"name": "iris"}}},
}
# Objects whose optional sub-objects are present but empty, so nested defaults apply too.
WITH_EMPTY_PARTS: dict[str, dict[str, Any]] = {
    "Model": {
        "spec": {
            "serving": {"canary": {}},
            "retention": {"keepLast": 3},
            "training": TEMPLATE,
        }
    },
    "DriftPolicy": {
        "spec": {
            "modelRef": {"name": "iris"},
            "actions": {"retrain": {}},
            "thresholds": {},
            "source": {"prometheus": {"url": "http://prometheus:9090"}},
        }
    },
}


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": api.API_VERSION, "kind": kind}
    doc |= copy.deepcopy(body)
    doc.setdefault("metadata", {"name": "iris"})
    return doc


def apply_schema_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Default like the API server: a missing property with a default gets it, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_schema_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_schema_defaults(schema["items"], item) for item in value]
    return value


CASES = [
    pytest.param(kind, body, id=f"{kind}-{label}")
    for label, table in (("minimal", MINIMAL), ("empty-parts", WITH_EMPTY_PARTS))
    for kind, body in table.items()
]


@pytest.mark.parametrize(("kind", "body"), CASES)
def test_pydantic_defaults_are_the_crd_defaults(kind, body):
    doc = document(kind, body)
    schema = crdgen.build_crd(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    server_side = apply_schema_defaults(schema, copy.deepcopy(doc))
    assert KINDS[kind].model.model_validate(doc).to_dict()["spec"] == server_side["spec"]


def test_wire_format_is_camel_case_and_snake_case_is_accepted():
    run = api.TrainingRun.model_validate(document("TrainingRun", MINIMAL["TrainingRun"]))
    wire = run.to_dict()
    assert wire["spec"]["backoffLimit"] == 0
    assert wire["spec"]["register"] is True
    assert wire["spec"]["output"] == {"pvc": {"claimName": "models"}}
    assert "status" in wire
    assert "job_name" not in str(wire)
    again = api.TrainingRunSpec.model_validate(
        {
            "model_ref": {"name": "iris"},
            "image": "trainer:1",
            "dataset": {"uri": "pvc://d/x.csv"},
            "output": {"pvc": {"claim_name": "models"}},
            "active_deadline_seconds": 60,
        }
    )
    assert again.active_deadline_seconds == 60
    assert again.to_dict()["activeDeadlineSeconds"] == 60


def test_unknown_fields_are_refused_except_in_metadata_and_free_form_maps():
    doc = document("TrainingRun", MINIMAL["TrainingRun"])
    doc["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    doc["spec"]["hyperparameters"] = {"anything": {"nested": [1, 2]}}
    run = api.TrainingRun.model_validate(doc)
    assert run.to_dict()["spec"]["hyperparameters"] == {"anything": {"nested": [1, 2]}}
    for where in (doc["spec"], doc["spec"]["dataset"], doc["spec"]["output"]["pvc"]):
        where["surprise"] = 1
        with pytest.raises(pydantic.ValidationError, match="surprise"):
            api.TrainingRun.model_validate(doc)
        del where["surprise"]


def test_training_template_has_no_model_ref_version_or_trigger():
    assert set(api.TrainingRunSpec.model_fields) - set(api.TrainingRunTemplate.model_fields) == {
        "model_ref",
        "version",
        "trigger",
    }
    with pytest.raises(pydantic.ValidationError, match="modelRef"):
        api.TrainingRunTemplate.model_validate(MINIMAL["TrainingRun"]["spec"])
    api.TrainingRunTemplate.model_validate(TEMPLATE)


def test_status_round_trips_with_aliases_that_are_python_keywords():
    status = api.ModelStatus.model_validate(
        {
            "productionVersion": "v2",
            "history": [
                {"time": "2026-11-28T06:00:00Z", "kind": "Promoted", "from": "v1", "to": "v2"}
            ],
        }
    )
    assert status.history is not None
    assert status.history[0].from_ == "v1"
    assert status.to_dict()["history"][0]["from"] == "v1"
    assert status.to_dict()["history"][0]["time"] == "2026-11-28T06:00:00Z"


def test_conditions_are_immutable_values():
    condition = api.Condition(
        type="Ready",
        status=api.ConditionStatus.TRUE,
        reason="Up",
        last_transition_time="2026-11-28T06:00:00Z",
    )
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        condition.status = api.ConditionStatus.FALSE  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("60s", timedelta(seconds=60)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("720h", timedelta(days=30)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text, want):
    assert api.parse_duration(text) == want


@pytest.mark.parametrize("text", ["", "10", "30d", "1h 30m", "-5s", "1H", "ten minutes"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="invalid duration"):
        api.parse_duration(text)


@pytest.mark.parametrize(
    ("metrics", "preferred", "want"),
    [
        pytest.param(None, (), None, id="no-metrics"),
        pytest.param({"f1": 0.9, "accuracy": 0.96712}, (), "accuracy=0.9671", id="alphabetical"),
        pytest.param({"f1": 0.9, "accuracy": 0.967}, ("f1",), "f1=0.9", id="gate-metric-first"),
        pytest.param({"f1": 0.9}, ("auc", "f1"), "f1=0.9", id="first-present-gate-metric"),
        pytest.param({"rmse": 1234.5}, ("auc",), "rmse=1234", id="no-gate-metric-present"),
    ],
)
def test_key_metric(metrics, preferred, want):
    doc = copy.deepcopy(MINIMAL["ModelVersion"]["spec"])
    if metrics is not None:
        doc["metrics"] = metrics
    assert api.ModelVersionSpec.model_validate(doc).key_metric(preferred) == want


def mutated(kind: str, path: str, value: Any, body: dict[str, Any] | None = None) -> Any:
    doc = document(kind, body or MINIMAL[kind])
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node.setdefault(part, {}) if not part.isdigit() else node[int(part)]
    node[last] = value
    return doc


SERVING: dict[str, Any] = {"spec": {"serving": {}}}
COLUMNS = [{"name": "x", "type": "numeric"}, {"name": "y", "type": "categorical"}]


@pytest.mark.parametrize(
    ("kind", "path", "value", "match"),
    [
        ("Model", "metadata.name", "m" * 41, "metadata.name"),
        ("Model", "metadata.name", "1iris", "metadata.name"),
        ("Model", "spec.serving.version", "v1", None),
        ("Model", "spec.serving", {"version": "v1", "promotion": "Automatic"}, "pins"),
        ("Model", "spec.serving", {"gates": [{"metric": "acc", "min": 0.9}]}, "gates apply"),
        ("Model", "spec.serving", {"requireApproval": True}, "requireApproval"),
        ("Model", "spec.serving", {"promotion": "Automatic", "gates": [{"metric": "a"}]}, "gate"),
        (
            "Model",
            "spec.serving",
            {"promotion": "Automatic", "gates": [{"metric": "a", "min": 2, "max": 1}]},
            "greater than max",
        ),
        (
            "Model",
            "spec.serving",
            {
                "promotion": "Automatic",
                "gates": [{"metric": "a", "min": 1}, {"metric": "a", "max": 2}],
            },
            "duplicate",
        ),
        ("Model", "spec.serving.canary", {"replicasPercent": 100}, "less than or equal to 99"),
        ("Model", "spec.serving.replicas", 0, "greater than or equal to 1"),
        ("Model", "spec.retention", {"deleteArtifacts": True}, "keepLast, maxAge"),
        ("Model", "spec.retention", {"maxAge": "30d"}, "pattern"),
        ("Model", "spec.notifications", {"sinks": []}, "at least 1"),
        ("ModelVersion", "metadata.name", "iris-v2", "<spec.modelRef.name>-<spec.version>"),
        ("ModelVersion", "spec.artifact.digest", "sha256:abc", "pattern"),
        ("ModelVersion", "spec.artifact.uri", "ftp://x/y", "pattern"),
        ("ModelVersion", "spec.metrics", {"bad name": 1.0}, "metric name"),
        ("ModelVersion", "spec.metrics", {"ok": "high"}, "valid number"),
        ("TrainingRun", "metadata.name", "r" * 64, "metadata.name"),
        ("TrainingRun", "spec.version", "v" * 23, "at most 22"),
        ("TrainingRun", "spec.backoffLimit", -1, "greater than or equal to 0"),
        ("TrainingRun", "spec.tolerations", [{"operator": "Exists", "value": "x"}], "Exists"),
        ("TrainingRun", "spec.tolerations", [{"value": "x"}], "without key"),
        ("TrainingRun", "spec.resources", {"limits": {"cpu": "lots"}}, "quantity"),
        ("TrainingRun", "spec.env", [{"name": "A", "value": ""}] * 2, "duplicate"),
        (
            "TrainingRun",
            "spec.dataset.schema",
            {"target": "z", "task": "regression", "columns": COLUMNS},
            "schema.target",
        ),
        (
            "TrainingRun",
            "spec.dataset.schema",
            {"target": "y", "task": "regression", "columns": COLUMNS},
            "schema.target",
        ),
        (
            "TrainingRun",
            "spec.dataset.schema",
            {"target": "y", "task": "classification", "columns": [COLUMNS[1]]},
            "at least 2",
        ),
        (
            "TrainingRun",
            "spec.dataset.schema",
            {
                "target": "y",
                "task": "classification",
                "columns": [COLUMNS[0], COLUMNS[1] | {"min": 1}],
            },
            "numeric columns",
        ),
        (
            "TrainingRun",
            "spec.dataset.schema",
            {
                "target": "y",
                "task": "classification",
                "columns": [COLUMNS[0] | {"allowed": ["a"]}, COLUMNS[1]],
            },
            "categorical columns",
        ),
        ("DriftPolicy", "metadata.name", "Drift", "metadata.name"),
        ("DriftPolicy", "spec.interval", "5s", "at least 10s"),
        ("DriftPolicy", "spec.thresholds", {"pValue": 1.5}, "less than 1"),
        ("DriftPolicy", "spec.thresholds", {"distance": 0}, "greater than 0"),
        ("DriftPolicy", "spec.method", "kl", "auto"),
        ("DriftPolicy", "spec.source", {}, "exactly one"),
        ("DriftPolicy", "spec.source", {"pods": {}, "prometheus": {"url": "http://p"}}, "exactly"),
        ("DriftPolicy", "spec.features", ["a", "a"], "duplicate"),
    ],
)
def test_pydantic_refuses_what_admission_refuses(kind, path, value, match):
    doc = mutated(kind, path, value, SERVING if path.startswith("spec.serving.") else None)
    if match is None:  # A control: the mutation alone is valid.
        KINDS[kind].model.model_validate(doc)
        return
    with pytest.raises(pydantic.ValidationError, match=match):
        KINDS[kind].model.model_validate(doc)
