"""The generated CRDs in a real kube-apiserver: installation, samples, admission, kubectl UX.

Uses the session ``cluster`` fixture (tests/conftest.py) and nothing else: no operator runs,
so statuses stay empty unless a test writes them. The CRDs are installed once for the module
with ``kubectl apply --server-side -k crds/`` (crds/ is a kustomization, so ``-f crds/`` would
also try to apply kustomization.yaml). Every object lives in namespaces this module creates
and deletes.

The table of invalid objects is also run against the pydantic models without a cluster
(``test_pydantic_refuses_the_same_objects``), so the operator and the API server agree on what
is valid.
"""

import copy
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pydantic
import pytest
import yaml

from modelops.api import API_VERSION, KINDS, ConditionStatus
from modelops.core.conditions import set_condition

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"
NOW = datetime(2026, 11, 28, 6, 0, 0, tzinfo=UTC)
DELETE = object()
"""A value for :func:`changed` that removes the field."""


class Cluster(Protocol):
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


def sample(kind: str) -> dict[str, Any]:
    path = SAMPLES / f"modelops_v1alpha1_{kind.lower()}.yaml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def sample_documents() -> list[Any]:
    """(namespace suffix, document) for every modelops object in the samples."""
    params = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        suffix = "lifecycle" if path.stem == "lifecycle" else "samples"
        for document in yaml.safe_load_all(path.read_text()):
            if document.get("apiVersion") == API_VERSION:
                name = f"{path.stem}-{document['metadata']['name']}"
                params.append(pytest.param(suffix, document, id=name))
    return params


def changed(document: dict[str, Any], *edits: tuple[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with each ``path = value`` edit applied.

    Paths are dotted; a numeric part indexes a list. ``DELETE`` removes the field.
    """
    result = copy.deepcopy(document)
    for path, value in edits:
        *parents, last = path.split(".")
        node: Any = result
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return result


def renamed(document: dict[str, Any]) -> dict[str, Any]:
    """The sample under a name of its own, so a rejected create never touches a sample."""
    if document["kind"] == "ModelVersion":
        return changed(document, ("metadata.name", "bad-v1"), ("spec.modelRef.name", "bad"))
    return changed(document, ("metadata.name", "bad"))


MODEL, VERSION, RUN, POLICY = (
    renamed(sample(kind)) for kind in ("Model", "ModelVersion", "TrainingRun", "DriftPolicy")
)
QUARANTINE = renamed(sample("Quarantine"))
AUTOMATIC = {"promotion": "Automatic", "gates": [{"metric": "accuracy", "min": 0.9}]}


def case(
    label: str, document: dict[str, Any], *edits: tuple[str, Any], errors: tuple[str, ...]
) -> Any:
    return pytest.param(changed(document, *edits), errors, id=label)


# Each case: an object, and the fragments the API server's refusal must contain (the field
# path first). Fragments are compared case-insensitively.
INVALID = [
    # Model
    case("model-name-too-long", MODEL, ("metadata.name", "m" * 41), errors=("metadata.name",)),
    case(
        "model-name-starts-with-digit", MODEL, ("metadata.name", "1iris"), errors=("metadata.name",)
    ),
    case(
        "replicas-negative", MODEL, ("spec.serving.replicas", -1), errors=("spec.serving.replicas",)
    ),
    case("replicas-zero", MODEL, ("spec.serving.replicas", 0), errors=("spec.serving.replicas",)),
    case(
        "replicas-wrong-type",
        MODEL,
        ("spec.serving.replicas", "two"),
        errors=("spec.serving.replicas",),
    ),
    case(
        "canary-over-100",
        MODEL,
        ("spec.serving.canary.replicasPercent", 150),
        errors=("spec.serving.canary.replicasPercent",),
    ),
    case(
        "canary-zero",
        MODEL,
        ("spec.serving.canary.replicasPercent", 0),
        errors=("spec.serving.canary.replicasPercent",),
    ),
    case(
        "pin-with-automatic",
        MODEL,
        ("spec.serving.promotion", "Automatic"),
        errors=("spec.serving.version", "cannot be combined"),
    ),
    case(
        "runtime-with-image",
        MODEL,
        ("spec.serving.runtime", "modelops-reference"),
        ("spec.serving.image", "example.com/server:1"),
        errors=("spec.serving.runtime", "exclusive"),
    ),
    case(
        "runtime-not-a-name",
        MODEL,
        ("spec.serving.runtime", "Triton_Server"),
        errors=("spec.serving.runtime",),
    ),
    case(
        "gates-with-manual",
        MODEL,
        ("spec.serving.gates", [{"metric": "accuracy", "min": 0.9}]),
        errors=("spec.serving.gates", "promotion: Automatic"),
    ),
    case(
        "gate-without-bounds",
        MODEL,
        ("spec.serving", AUTOMATIC | {"gates": [{"metric": "accuracy"}]}),
        errors=("spec.serving.gates[0]", "min, max or both"),
    ),
    case(
        "gate-min-above-max",
        MODEL,
        ("spec.serving", AUTOMATIC | {"gates": [{"metric": "accuracy", "min": 2, "max": 1}]}),
        errors=("spec.serving.gates[0].min",),
    ),
    case(
        "gate-duplicate-metric",
        MODEL,
        (
            "spec.serving",
            AUTOMATIC | {"gates": [{"metric": "acc", "min": 1}, {"metric": "acc", "max": 2}]},
        ),
        errors=("spec.serving.gates", "duplicate"),
    ),
    case(
        "promotion-unknown",
        MODEL,
        ("spec.serving.promotion", "Sometimes"),
        errors=("spec.serving.promotion", "Unsupported value"),
    ),
    case(
        "pin-not-a-dns-label",
        MODEL,
        ("spec.serving.version", "V1"),
        errors=("spec.serving.version",),
    ),
    case(
        "unknown-field",
        MODEL,
        ("spec.serving.replica", 3),
        errors=("spec.serving.replica", "not declared"),
    ),
    case(
        "retention-without-limit",
        MODEL,
        ("spec.retention", {"deleteArtifacts": True}),
        errors=("spec.retention.keepLast", "keepLast, maxAge or both"),
    ),
    case(
        "retention-bad-duration",
        MODEL,
        ("spec.retention.maxAge", "30d"),
        errors=("spec.retention.maxAge",),
    ),
    case(
        "sink-not-http",
        MODEL,
        ("spec.notifications", {"sinks": [{"url": "ftp://events"}]}),
        errors=("spec.notifications.sinks[0].url",),
    ),
    # ModelVersion
    case(
        "version-name-mismatch",
        VERSION,
        ("metadata.name", "bad-v2"),
        errors=("metadata.name", "<spec.modelRef.name>-<spec.version>"),
    ),
    case(
        "artifact-missing", VERSION, ("spec.artifact", DELETE), errors=("spec.artifact", "Required")
    ),
    case(
        "digest-malformed",
        VERSION,
        ("spec.artifact.digest", "sha256:1234"),
        errors=("spec.artifact.digest",),
    ),
    case(
        "digest-uppercase",
        VERSION,
        ("spec.artifact.digest", "sha256:" + "AB" * 32),
        errors=("spec.artifact.digest",),
    ),
    case(
        "uri-unknown-scheme",
        VERSION,
        ("spec.artifact.uri", "ftp://models/iris"),
        errors=("spec.artifact.uri",),
    ),
    case(
        "version-too-long",
        VERSION,
        ("metadata.name", "bad-" + "v" * 23),
        ("spec.version", "v" * 23),
        errors=("spec.version",),
    ),
    case(
        "metric-not-a-number",
        VERSION,
        ("spec.metrics.accuracy", "high"),
        errors=("spec.metrics.accuracy",),
    ),
    case(
        "metric-name-invalid",
        VERSION,
        ("spec.metrics", {"top 1 accuracy": 0.9}),
        errors=("spec.metrics", "metric names"),
    ),
    case("spec-missing", VERSION, ("spec", DELETE), errors=("spec", "Required")),
    case(
        "model-ref-too-long",
        VERSION,
        ("metadata.name", "m" * 41 + "-v1"),
        ("spec.modelRef.name", "m" * 41),
        errors=("spec.modelRef.name",),
    ),
    # TrainingRun
    case("run-name-too-long", RUN, ("metadata.name", "r" * 64), errors=("metadata.name",)),
    case("image-missing", RUN, ("spec.image", DELETE), errors=("spec.image", "Required")),
    case("backoff-negative", RUN, ("spec.backoffLimit", -1), errors=("spec.backoffLimit",)),
    case(
        "deadline-zero",
        RUN,
        ("spec.activeDeadlineSeconds", 0),
        errors=("spec.activeDeadlineSeconds",),
    ),
    case(
        "dataset-digest-not-sha256",
        RUN,
        ("spec.dataset.digest", "md5:0123456789abcdef"),
        errors=("spec.dataset.digest",),
    ),
    case(
        "dataset-uri-relative",
        RUN,
        ("spec.dataset.uri", "datasets/iris.csv"),
        errors=("spec.dataset.uri",),
    ),
    case(
        "target-not-declared",
        RUN,
        ("spec.dataset.schema.target", "colour"),
        errors=("spec.dataset.schema.target", "one of schema.columns"),
    ),
    case(
        "column-type-unknown",
        RUN,
        ("spec.dataset.schema.columns.0.type", "integer"),
        errors=("spec.dataset.schema.columns[0].type", "Unsupported value"),
    ),
    case(
        "categorical-column-with-min",
        RUN,
        ("spec.dataset.schema.columns.4.min", 0),
        errors=("spec.dataset.schema.columns[4]", "only to numeric columns"),
    ),
    case(
        "nan-share-over-one",
        RUN,
        ("spec.dataset.schema.columns.0.maxNaNShare", 1.5),
        errors=("spec.dataset.schema.columns[0].maxNaNShare",),
    ),
    case(
        "toleration-exists-with-value",
        RUN,
        ("spec.tolerations", [{"operator": "Exists", "value": "gpu"}]),
        errors=("spec.tolerations[0].value",),
    ),
    case(
        "quantity-malformed",
        RUN,
        ("spec.resources.limits.cpu", "lots"),
        errors=("spec.resources.limits.cpu",),
    ),
    case(
        "env-duplicate",
        RUN,
        ("spec.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        errors=("spec.env", "duplicate"),
    ),
    case(
        "output-without-pvc-or-s3",
        RUN,
        ("spec.output", {}),
        errors=("spec.output.pvc", "exactly one of pvc and s3"),
    ),
    case(
        "output-pvc-and-s3",
        RUN,
        ("spec.output.s3", {"uri": "s3://models/trained"}),
        errors=("spec.output.pvc", "exactly one of pvc and s3"),
    ),
    case(
        "s3-output-without-storage",
        RUN,
        ("spec.output", {"s3": {"uri": "s3://models/trained"}}),
        errors=("spec.storage", "storage.s3 is required"),
    ),
    case(
        "s3-uri-not-a-bucket",
        RUN,
        ("spec.output", {"s3": {"uri": "s3://Not_A_Bucket/x"}}),
        errors=("spec.output.s3.uri",),
    ),
    case(
        "hyperparameters-not-an-object",
        RUN,
        ("spec.hyperparameters", [1, 2]),
        errors=("spec.hyperparameters",),
    ),
    # DriftPolicy
    case(
        "p-value-above-one",
        POLICY,
        ("spec.thresholds.pValue", 1.5),
        errors=("spec.thresholds.pValue",),
    ),
    case(
        "distance-negative",
        POLICY,
        ("spec.thresholds.distance", -0.1),
        errors=("spec.thresholds.distance",),
    ),
    case(
        "method-unknown", POLICY, ("spec.method", "kl"), errors=("spec.method", "Unsupported value")
    ),
    case(
        "correction-unknown",
        POLICY,
        ("spec.correction", "holm"),
        errors=("spec.correction", "Unsupported value"),
    ),
    case("interval-too-short", POLICY, ("spec.interval", "5s"), errors=("spec.interval", "10s")),
    case("window-not-a-duration", POLICY, ("spec.window", "ten minutes"), errors=("spec.window",)),
    case(
        "two-sources",
        POLICY,
        ("spec.source", {"pods": {}, "prometheus": {"url": "http://prometheus:9090"}}),
        errors=("spec.source", "exactly one"),
    ),
    case(
        "consecutive-windows-zero",
        POLICY,
        ("spec.consecutiveWindows", 0),
        errors=("spec.consecutiveWindows",),
    ),
    case(
        "drift-share-above-one",
        POLICY,
        ("spec.datasetDriftShare", 1.5),
        errors=("spec.datasetDriftShare",),
    ),
    case(
        "max-concurrent-zero",
        POLICY,
        ("spec.actions.retrain", {"maxConcurrent": 0}),
        errors=("spec.actions.retrain.maxConcurrent",),
    ),
    case(
        "policy-name-with-dot", POLICY, ("metadata.name", "iris.drift"), errors=("metadata.name",)
    ),
    # Quarantine
    case(
        "quarantine-two-digests",
        QUARANTINE,
        ("spec.imageDigest", "sha256:" + "1" * 64),
        errors=("exactly one of datasetDigest and imageDigest",),
    ),
    case(
        "quarantine-no-digest",
        QUARANTINE,
        ("spec.datasetDigest", DELETE),
        errors=("exactly one of datasetDigest and imageDigest",),
    ),
    case(
        "quarantine-bad-digest",
        QUARANTINE,
        ("spec.datasetDigest", "md5:0badc0de"),
        errors=("spec.datasetDigest",),
    ),
    case("quarantine-no-reason", QUARANTINE, ("spec.reason", DELETE), errors=("spec.reason",)),
]

# Updates of the applied samples: (kind, edits, fragments of the refusal or None if allowed).
UPDATES = [
    pytest.param(
        "Quarantine",
        [("spec.reason", "another reason")],
        ("spec", "immutable"),
        id="quarantine-reason",
    ),
    pytest.param(
        "ModelVersion",
        [("spec.metrics.accuracy", 0.99)],
        ("spec", "immutable"),
        id="version-metrics",
    ),
    pytest.param(
        "ModelVersion",
        [("spec.artifact.digest", "sha256:" + "0" * 64)],
        ("spec", "immutable"),
        id="version-digest",
    ),
    pytest.param(
        "ModelVersion",
        [("spec.provenance.parameters.epochs", 1)],
        ("spec", "immutable"),
        id="version-free-form-parameters",
    ),
    pytest.param(
        "ModelVersion",
        [("metadata.labels.modelops.dev/approved", "false")],
        None,
        id="version-labels-may-change",
    ),
    pytest.param("TrainingRun", [("spec.image", "trainer:2")], ("spec.image",), id="run-image"),
    pytest.param("TrainingRun", [("spec.args", ["--seed=1"])], ("spec.args",), id="run-add-args"),
    pytest.param(
        "TrainingRun", [("spec.command", DELETE)], ("spec.command",), id="run-remove-command"
    ),
    pytest.param(
        "TrainingRun",
        [("spec.dataset.uri", "pvc://datasets/other.csv")],
        ("spec.dataset",),
        id="run-dataset",
    ),
    pytest.param(
        "TrainingRun",
        [("spec.modelRef.name", "other")],
        ("spec.modelRef",),
        id="run-model-ref",
    ),
    pytest.param(
        "TrainingRun",
        [("spec.hyperparameters.epochs", 10)],
        ("spec.hyperparameters",),
        id="run-hyperparameters",
    ),
    pytest.param(
        "TrainingRun",
        [("spec.suspend", True), ("spec.activeDeadlineSeconds", 1800)],
        None,
        id="run-suspend-and-deadline-may-change",
    ),
]


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    names = [f"crd/{info.crd_name}" for info in KINDS.values()]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return cluster


@pytest.fixture(scope="module")
def namespaces(crds: Cluster) -> Iterator[dict[str, str]]:
    prefix = f"api-admission-{uuid.uuid4().hex[:8]}"
    names = {"samples": prefix, "lifecycle": f"{prefix}-lifecycle"}
    for name in names.values():
        crds.kubectl("create", "namespace", name)
    yield names
    for name in names.values():
        crds.kubectl("delete", "namespace", name, "--wait=false", check=False)
    # Cluster-scoped samples outlive the namespaces: delete them, so no later module sees them.
    for document in (param.values[1] for param in sample_documents()):
        if KINDS[document["kind"]].scope == "Cluster":
            crds.kubectl(
                "delete",
                f"{KINDS[document['kind']].plural}.{KINDS[document['kind']].group}",
                document["metadata"]["name"],
                "--ignore-not-found",
                check=False,
            )


@pytest.fixture(scope="module")
def applied(crds: Cluster, namespaces: dict[str, str]) -> dict[str, str]:
    """Apply the modelops objects of every sample file, each file into its namespace; return
    the namespaces. The rest (claims, the dataset-loading Job) is not this module's business
    and would only start workloads."""
    for where, document in (param.values for param in sample_documents()):
        result = apply(crds, namespaces[where], document)
        assert result.returncode == 0, result.stderr
    return namespaces


def apply(cluster: Cluster, namespace: str, document: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(document),
        check=False,
    )


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    resource = f"{KINDS[kind].plural}.{KINDS[kind].group}"
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", "-n", namespace, resource, name, "-o", "json").stdout
    )
    return found


def contains(full: Any, part: Any) -> bool:
    """Whether ``full`` has every value of ``part`` (maps may have more keys, for defaults)."""
    if isinstance(part, dict):
        return isinstance(full, dict) and all(
            key in full and contains(full[key], value) for key, value in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(full, list)
            and len(full) == len(part)
            and all(contains(f, p) for f, p in zip(full, part, strict=True))
        )
    return bool(full == part)


@pytest.mark.cluster
def test_crds_are_established_and_structural(crds):
    for info in KINDS.values():
        crd = json.loads(crds.kubectl("get", "crd", info.crd_name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
        assert "NonStructuralSchema" not in conditions
        assert crd["status"]["acceptedNames"]["shortNames"] == list(info.short_names)


@pytest.mark.cluster
@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda path: path.stem)
def test_whole_sample_file_is_valid(applied, crds, path):
    """Every object in the file, claims and Jobs included (a server dry run starts nothing)."""
    crds.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", applied["samples"], "-f", str(path)
    )


@pytest.mark.cluster
@pytest.mark.parametrize(("where", "document"), sample_documents())
def test_sample_reads_back_unchanged_and_as_pydantic_dumps_it(applied, crds, where, document):
    kind, name = document["kind"], document["metadata"]["name"]
    stored = get(crds, applied[where], kind, name)
    assert contains(stored["spec"], document["spec"]), "the API server pruned a field"
    assert stored["metadata"].get("labels") == document["metadata"].get("labels")
    # Round trip: the server's defaults are the models' defaults.
    assert KINDS[kind].model.model_validate(document).to_dict()["spec"] == stored["spec"]
    assert KINDS[kind].model.model_validate(stored).to_dict()["spec"] == stored["spec"]


@pytest.mark.cluster
@pytest.mark.parametrize(("document", "errors"), INVALID)
def test_invalid_object_is_rejected_at_admission(crds, namespaces, document, errors):
    result = apply(crds, namespaces["samples"], document)
    if result.returncode == 0:
        crds.kubectl("delete", "-n", namespaces["samples"], "-f", "-", input=json.dumps(document))
        pytest.fail(f"accepted: {result.stdout}")
    message = result.stderr.lower()
    for fragment in errors:
        assert fragment.lower() in message, result.stderr


@pytest.mark.parametrize(("document", "errors"), INVALID)
def test_pydantic_refuses_the_same_objects(document, errors):
    with pytest.raises(pydantic.ValidationError):
        KINDS[document["kind"]].model.model_validate(document)


def test_the_invalid_table_is_large_and_valid_at_its_base():
    assert len(INVALID) >= 30
    for document in (MODEL, VERSION, RUN, POLICY, QUARANTINE):
        KINDS[document["kind"]].model.model_validate(document)


@pytest.mark.cluster
@pytest.mark.parametrize(("kind", "edits", "errors"), UPDATES)
def test_update_of_an_applied_sample(applied, crds, kind, edits, errors):
    document = sample(kind)
    label_edits = [(path, value) for path, value in edits if path.startswith("metadata.labels.")]
    spec_edits = [(path, value) for path, value in edits if not path.startswith("metadata.")]
    updated = changed(document, *spec_edits)
    for path, value in label_edits:
        updated["metadata"]["labels"][path.removeprefix("metadata.labels.")] = value
    result = apply(crds, applied["samples"], updated)
    if errors is None:
        assert result.returncode == 0, result.stderr
        apply(crds, applied["samples"], document)  # Put the sample back for other tests.
        return
    assert result.returncode != 0, "the update was accepted"
    message = result.stderr.lower()
    for fragment in (*errors, "immutable"):
        assert fragment.lower() in message, result.stderr


@pytest.mark.cluster
def test_explain_prints_the_field_descriptions(crds):
    text = crds.kubectl("explain", "modelversion.spec.artifact").stdout
    assert "The trained artifact" in text
    for field in ("digest", "format", "uri"):
        assert f"{field}\t<string> -required-" in text
    assert "pins the whole artifact" in text
    assert "pvc://<claim>/<path>" in text


def statuses() -> dict[str, dict[str, Any]]:
    """A status for one object of each kind, built with the models and the condition helper."""

    def conditions(*types: str) -> list[Any]:
        result: list[Any] = []
        for condition_type in types:
            result = set_condition(
                result,
                condition_type,
                ConditionStatus.TRUE,
                reason="TestWritten",
                observed_generation=1,
                now=NOW,
            )
        return result

    built: dict[str, Callable[[], Any]] = {
        "Model": lambda: KINDS["Model"].status.model_validate(
            {
                "productionVersion": "v1",
                "canaryVersion": "v2",
                "endpoint": "http://iris.example:8080",
                "history": [{"time": NOW, "kind": "Promoted", "to": "v1", "reason": "Pinned"}],
                "conditions": conditions("Ready", "Progressing"),
                "observedGeneration": 1,
            }
        ),
        "ModelVersion": lambda: KINDS["ModelVersion"].status.model_validate(
            {
                "phase": "Serving",
                "servedSince": NOW,
                "keyMetric": "accuracy=0.9",
                "conditions": conditions("Ready"),
                "observedGeneration": 1,
            }
        ),
        "TrainingRun": lambda: KINDS["TrainingRun"].status.model_validate(
            {
                "phase": "Succeeded",
                "jobName": "iris-2",
                "startTime": NOW,
                "completionTime": NOW,
                "modelVersion": "iris-2",
                "result": {
                    "artifact": sample("ModelVersion")["spec"]["artifact"],
                    "metrics": {"accuracy": 0.9},
                },
                "conditions": conditions("Succeeded"),
                "observedGeneration": 1,
            }
        ),
        "DriftPolicy": lambda: KINDS["DriftPolicy"].status.model_validate(
            {
                "version": "v1",
                "lastEvaluation": NOW,
                "samples": 500,
                "datasetDrift": True,
                "driftedShare": 0.75,
                "topFeatures": [
                    {
                        "name": "petal_width",
                        "method": "psi",
                        "score": 0.4,
                        "threshold": 0.2,
                        "drifted": True,
                    }
                ],
                "conditions": conditions("Ready", "DriftDetected"),
                "observedGeneration": 1,
            }
        ),
    }
    return {kind: build().to_dict() for kind, build in built.items()}


@pytest.mark.cluster
def test_get_modelops_lists_every_kind_with_its_columns(applied, crds):
    namespace = applied["samples"]
    for kind, status in statuses().items():
        resource = f"{KINDS[kind].plural}.{KINDS[kind].group}"
        name = sample(kind)["metadata"]["name"]
        crds.kubectl(
            "patch", "-n", namespace, resource, name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip
        stored = get(crds, namespace, kind, name)["status"]
        assert stored == status, "the API server pruned or changed a status field"
    output = crds.kubectl("get", "modelops", "-n", namespace).stdout
    lines = [" ".join(line.split()) for line in output.splitlines()]
    for header, row in (
        ("NAME PRODUCTION CANARY READY AGE", "model.modelops.dev/iris v1 v2 True"),
        (
            "NAME MODEL VERSION PHASE METRIC READY AGE",
            "modelversion.modelops.dev/iris-v1 iris v1 Serving accuracy=0.9 True",
        ),
        (
            "NAME MODEL PHASE SUCCEEDED VERSION AGE",
            "trainingrun.modelops.dev/iris-2 iris Succeeded True iris-2",
        ),
        ("NAME MODEL DRIFT DRIFTED READY AGE", "driftpolicy.modelops.dev/iris iris True 0.75 True"),
    ):
        assert header in lines, output
        assert any(line.startswith(row) for line in lines), output
    for info in KINDS.values():
        for short in info.short_names:
            assert crds.kubectl("get", short, "-n", namespace).stdout.strip()
