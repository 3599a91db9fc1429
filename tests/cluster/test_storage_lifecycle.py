"""A user's own model through the whole loop, once with S3 and once with PVCs: train →
register → serve → drift → retrain → retire, data and artifacts in a real S3 server or on
PersistentVolumeClaims.

On the local control plane with the operator as a process and the harness's S3 server
(versitygw, ``harness.s3``, on the host's end of the first node's link, which pods reach). The
TrainingRun runs the scikit-learn example on a real node (its own image,
``examples/sklearn-iris/train.py`` through the SDK): it reads the dataset from
``s3://``, uploads an ``onnx/v1`` artifact; the serving pod's init step downloads and verifies
it against the ModelVersion's digest, and the reference server serves it with onnxruntime. The
predictions equal scikit-learn's; shifted traffic makes the DriftPolicy retrain, the new version
is promoted, and retention retires the first one and deletes its objects (its ``RETIRED``
marker stays). A tampered object is refused before anything serves it, and wrong credentials
fail a run with a condition that says so (those two only with S3). The module fixture is
parametrized by backend: the same tests run with the data on the ``datasets`` claim and the
artifacts on the ``models`` claim. The examples on real nodes are in ``test_real_nodes.py``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from harness import realnode
from harness.cluster import LocalCluster
from harness.cluster import wait_for as harness_wait
from harness.s3 import S3Server
from harness.traffic import Traffic, read_rows, ready_pod_ips
from modelops import datasets, storage
from modelops.api import artifact as contract
from tests.cluster.kube import (
    DRIFT_POLICY_SPEC,
    IRIS_FEATURES,
    RUNNER,
    Operator,
    apply,
    artifacts_root,
    condition,
    get,
    has_condition,
    install_crds,
    prepare_namespace,
    wait_for,
)
from tests.harness.test_s3_server import require_binary
from tests.unit.test_examples import example

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

NS = {"s3": "lifecycle-s3", "pvc": "lifecycle-pvc"}
DATA, MODELS = "ml-data", "ml-models"
EXAMPLE_IMAGE = "ghcr.io/modelops/example-sklearn-iris:0.1.0"
IRIS = datasets.path("iris.csv").read_bytes()


@dataclass
class Env:
    backend: str
    cluster: LocalCluster
    operator: Operator
    s3: S3Server
    settings: storage.S3Settings
    traffic: Traffic

    @property
    def ns(self) -> str:
        return NS[self.backend]

    def training(self, secret: str = "s3-credentials") -> dict[str, Any]:
        """The example's TrainingRun spec (without the Model): the SDK script, dataset and
        output in S3 or on the claims."""
        spec = training(self.s3, secret)
        if self.backend == "pvc":
            del spec["storage"]
            spec["dataset"] = {**spec["dataset"], "uri": "pvc://datasets/iris.csv"}
            spec["output"] = {"pvc": {"claimName": "models"}}
        return spec

    def artifact_uri(self, run: str) -> str:
        if self.backend == "pvc":
            return f"pvc://models/iris/{run}"
        return f"s3://{MODELS}/trained/iris/{run}"

    def artifact_files(self, run: str) -> set[str]:
        """What is left of a version's artifact: object or file names."""
        if self.backend == "pvc":
            directory = artifacts_root(self.cluster, self.ns) / "iris" / run
            return {p.name for p in directory.iterdir()}
        prefix = f"s3://{MODELS}/trained/iris/{run}"
        return {
            name
            for name in ("manifest.json", "model.json", "model.onnx", "reference.json", "RETIRED")
            if storage.exists(f"{prefix}/{name}", self.settings)
        }


def storage_spec(s3: S3Server, secret: str = "s3-credentials") -> dict[str, Any]:
    return {
        "s3": {
            "endpoint": s3.endpoint,
            "region": s3.region,
            "pathStyle": True,
            "credentialsSecret": secret,
        }
    }


def training(s3: S3Server, secret: str = "s3-credentials") -> dict[str, Any]:
    """The example's TrainingRun spec (without the Model): the SDK script, dataset and output
    in S3."""
    # The image's own entrypoint runs the script.
    return {
        "image": EXAMPLE_IMAGE,
        "nodeSelector": RUNNER,
        "dataset": {
            "uri": f"s3://{DATA}/iris/iris.csv",
            "digest": contract.sha256_digest(IRIS),
        },
        "hyperparameters": {"C": 1.0, "seed": 0},
        "output": {"s3": {"uri": f"s3://{MODELS}/trained"}},
        "storage": storage_spec(s3, secret),
        "activeDeadlineSeconds": 300,
    }


def secret(name: str, access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
    }


@pytest.fixture(scope="module", params=["s3", "pvc"])
def env(
    request: pytest.FixtureRequest,
    cluster: LocalCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    require_binary()
    backend: str = request.param
    ns = NS[backend]
    work = tmp_path_factory.mktemp(ns)
    if backend == "pvc":
        prepare_namespace(cluster, ns)  # the claims, and iris.csv landed on datasets
    else:
        install_crds(cluster)
        cluster.kubectl("create", "namespace", ns)
    # Pods on the real nodes reach the host at its end of a node's link (not its loopback),
    # and run the example's own image, loaded onto the nodes as `kind load` would.
    nodes, _ = realnode.load(cluster)
    realnode.import_images(cluster, nodes, EXAMPLE_IMAGE)
    with S3Server(work / "s3", host=nodes[0].host_ip) as s3:
        settings = storage.S3Settings(
            endpoint=s3.endpoint,
            region=s3.region,
            path_style=True,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
        )
        s3.create_bucket(DATA)
        s3.create_bucket(MODELS)
        storage.put_bytes(f"s3://{DATA}/iris/iris.csv", IRIS, settings)
        apply(
            cluster,
            secret("s3-credentials", s3.access_key, s3.secret_key),
            secret("s3-wrong", s3.access_key, "0" * 40),
            namespace=ns,
        )
        operator = Operator(cluster.kubeconfig, work / "operator.log", ns)
        traffic = Traffic(
            "iris",
            read_rows(datasets.path("iris.csv"), list(IRIS_FEATURES)),
            pods=lambda: ready_pod_ips(cluster.kubectl, ns, "iris"),
        )
        operator.start()
        try:
            yield Env(backend, cluster, operator, s3, settings, traffic)
        finally:
            traffic.stop()
            operator.stop()
            print(operator.log.read_text()[-8000:])


def infer(ip: str, rows: np.ndarray) -> dict[str, Any]:
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    ).encode()
    request = urllib.request.Request(
        f"http://{ip}:8080/v2/models/iris/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        answer: dict[str, Any] = json.loads(r.read())
    return {o["name"]: o["data"] for o in answer["outputs"]}


def model_serves(version: str) -> Any:
    return lambda m: has_condition("Ready")(m) and m["status"].get("productionVersion") == version


def test_a_model_trained_with_the_sdk_is_served_with_the_frameworks_predictions(
    env: Env,
) -> None:
    apply(
        env.cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {
                "training": env.training(),
                **({"storage": storage_spec(env.s3)} if env.backend == "s3" else {}),
                "serving": {
                    "promotion": "Automatic",
                    "gates": [{"metric": "accuracy", "min": 0.9}],
                    "replicas": 1,
                    "progressDeadlineSeconds": 120,
                },
                "retention": {"keepLast": 0, "deleteArtifacts": True},
            },
        },
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": "iris-1"},
            "spec": {"modelRef": {"name": "iris"}, **env.training()},
        },
        namespace=env.ns,
    )
    wait_for(
        env.cluster,
        ["model", "iris", "-n", env.ns],
        model_serves("1"),
        timeout=300,
        what=f"Model iris to serve version 1 ({env.backend})",
    )
    version = get(env.cluster, "modelversion", "iris-1", "-n", env.ns)
    assert version is not None
    artifact = version["spec"]["artifact"]
    assert artifact["format"] == "onnx/v1"
    assert artifact["uri"] == env.artifact_uri("iris-1")
    assert "model.onnx" in env.artifact_files("iris-1")
    (ip,) = ready_pod_ips(env.cluster.kubectl, env.ns, "iris")
    if env.backend == "s3":
        # The serving pod downloaded and verified the artifact in its init step.
        pods = json.loads(env.cluster.kubectl("get", "pods", "-n", env.ns, "-o", "json").stdout)
        (pod,) = [p for p in pods["items"] if p["status"].get("podIP") == ip]
        (init,) = pod["status"]["initContainerStatuses"]
        assert init["state"]["terminated"]["exitCode"] == 0
    module = example("sklearn-iris")
    x, y, _ = module.load(str(datasets.path("iris.csv")), "species")
    pipeline, _, x_test, _ = module.fit(x, y, {"C": 1.0, "seed": 0})
    answer = infer(ip, x_test)
    assert answer["predict"] == pipeline.predict(x_test).tolist()
    np.testing.assert_allclose(
        np.array(answer["predict_proba"]).reshape(len(x_test), -1),
        pipeline.predict_proba(x_test),
        atol=1e-5,
    )


def test_shifted_traffic_retrains_and_the_old_version_is_retired_and_deleted(env: Env) -> None:
    apply(
        env.cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "iris-drift"},
            "spec": {
                **DRIFT_POLICY_SPEC,  # the drift loop's own test's windows and thresholds
                "actions": {"retrain": {"enabled": True, "cooldown": "1h", "maxConcurrent": 1}},
            },
        },
        namespace=env.ns,
    )
    env.traffic.shift = {"petal_length": 4.0}  # far beyond any petal length seen in training
    env.traffic.start()
    policy = wait_for(
        env.cluster,
        ["driftpolicy", "iris-drift", "-n", env.ns],
        lambda p: (condition(p, "DriftDetected") or {}).get("status") == "True",
        timeout=240,
        what="DriftPolicy iris-drift to detect drift on the shifted feature",
    )
    assert policy["status"]["topFeatures"][0]["name"] == "petal_length"
    # The retrain run trains from the same S3 data; its version passes the gate and serves.
    model = wait_for(
        env.cluster,
        ["model", "iris", "-n", env.ns],
        lambda m: (
            m["status"].get("productionVersion") not in (None, "1") and has_condition("Ready")(m)
        ),
        timeout=420,
        what="Model iris to promote the retrained version",
    )
    env.traffic.stop()
    new = model["status"]["productionVersion"]
    assert new.startswith("retrain-")
    retired = wait_for(
        env.cluster,
        ["modelversion", "iris-1", "-n", env.ns],
        lambda v: v["status"].get("phase") == "Retired",
        timeout=120,
        what="version 1 to be retired",
    )
    assert retired["metadata"]["labels"]["modelops.dev/retired"] == "true"
    harness_wait(
        "the retire Job to delete version 1's artifact",
        lambda: env.artifact_files("iris-1") == {storage.RETIRED_MARKER},
        120,
    )


def test_a_tampered_object_is_refused_before_it_is_served(env: Env) -> None:
    if env.backend != "s3":
        pytest.skip(
            "S3 only: the init step that verifies downloaded objects (a PVC version's "
            "tampered file is test_serving.py's)"
        )
    # A copy of the serving artifact, with its graph altered after the digest was taken.
    versions = get(env.cluster, "modelversion", "-n", env.ns, "-l", "modelops.dev/model=iris")
    assert versions is not None
    serving = next(v for v in versions["items"] if v["status"].get("phase") == "Serving")
    artifact = serving["spec"]["artifact"]
    copy = f"s3://{MODELS}/copies/tampered"
    local = env.operator.log.parent / "tampered"
    for name in storage.fetch_artifact(artifact["uri"], artifact["digest"], local, env.settings):
        data = b"evil" if name == "model.onnx" else (local / name).read_bytes()
        storage.put_bytes(f"{copy}/{name}", data, env.settings)
    apply(
        env.cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "tampered"},
            "spec": {
                "storage": storage_spec(env.s3),
                "serving": {"version": "1", "replicas": 1, "progressDeadlineSeconds": 60},
            },
        },
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "tampered-1"},
            "spec": {
                "modelRef": {"name": "tampered"},
                "version": "1",
                "artifact": {**artifact, "uri": copy},
            },
        },
        namespace=env.ns,
    )

    # The Model may first report VersionNotFound (it can be seen before its ModelVersion), so
    # wait for the condition that names the refused object.
    def refused(m: dict[str, Any]) -> bool:
        return any(
            (condition(m, kind) or {}).get("status") == "True"
            and "model.onnx has digest" in (condition(m, kind) or {}).get("message", "")
            for kind in ("Degraded", "Stalled")
        )

    model = wait_for(
        env.cluster,
        ["model", "tampered", "-n", env.ns],
        refused,
        timeout=240,
        what="Model tampered to report the refused artifact",
    )
    assert model["status"].get("productionVersion") is None


def test_wrong_credentials_fail_the_run_with_a_clear_condition(env: Env) -> None:
    if env.backend != "s3":
        pytest.skip("S3 only: a PVC has no credentials")
    apply(
        env.cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": "iris-wrong-key"},
            "spec": {"modelRef": {"name": "iris"}, **training(env.s3, "s3-wrong")},
        },
        namespace=env.ns,
    )
    run = wait_for(
        env.cluster,
        ["trainingrun", "iris-wrong-key", "-n", env.ns],
        has_condition("Succeeded", "False"),
        timeout=180,
        what="TrainingRun iris-wrong-key to fail",
    )
    failed = condition(run, "Succeeded")
    assert failed is not None
    assert "refused the credentials" in failed["message"], failed
    assert "SignatureDoesNotMatch" in failed["message"], failed
    assert get(env.cluster, "modelversion", "iris-wrong-key", "-n", env.ns) is None
