"""The built images (``make images``) run their real entrypoints.

The trainer image trains on the bundled iris dataset into a mounted directory; the server image
serves that artifact: its digest verified, ``/v2/health/ready`` answers 200 and an inference
request is answered, on a loopback port of the host. Both run as the restricted pods run them:
read-only root filesystem, every capability dropped, no privilege escalation, the image's own
non-root user. Podman runs with the harness's settings (``hack/containers.conf``).

Skipped, saying why, where podman or the images are missing (build them with ``make images``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import REPO, free_port
from modelops import datasets

VERSION = "0.1.0"
IMAGES = {t: f"ghcr.io/modelops/{t}:{VERSION}" for t in ("operator", "trainer", "server")}
RESTRICTED = ["--read-only", "--cap-drop=all", "--security-opt=no-new-privileges"]


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(REPO / "hack" / "containers.conf")},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module", autouse=True)
def images_built() -> None:
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("needs root and podman (hack/system-packages.sh)")
    missing = [i for i in IMAGES.values() if podman("image", "exists", i).returncode != 0]
    if missing:
        pytest.skip(f"images not built ({', '.join(missing)}): run `make images`")


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Container names for one test; whatever is left of them is removed afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        podman("rm", "--force", "--time=0", name)


def world_writable(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o777)  # the images run as uid 65532
    return path


def train(tmp_path: Path, names: list[str]) -> Path:
    out = world_writable(tmp_path / "out")
    names.append(f"modelops-test-trainer-{os.getpid()}")
    run = podman(
        "run",
        "--rm",
        f"--name={names[-1]}",
        "--network=none",
        *RESTRICTED,
        f"--volume={datasets.path('iris.csv')}:/data/iris.csv:ro",
        f"--volume={datasets.path('iris.schema.json')}:/data/iris.schema.json:ro",
        f"--volume={out}:/out",
        "--env=MODELOPS_TRAINER_DATASET=/data/iris.csv",
        "--env=MODELOPS_TRAINER_SCHEMA=/data/iris.schema.json",
        "--env=MODELOPS_TRAINER_OUTPUT_DIR=/out/artifact",
        "--env=MODELOPS_TRAINER_TERMINATION_LOG=/out/termination-log",
        IMAGES["trainer"],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_images_run_as_non_root_with_their_entrypoints() -> None:
    for target, image in IMAGES.items():
        config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
        assert config["User"] == "65532:65532", target
        assert config["Entrypoint"][:2] == ["python", "-m"], target
        # The uid has a name: kopf's peering identity (getpass.getuser) needs one.
        who = podman(
            "run",
            "--rm",
            "--network=none",
            "--entrypoint=python",
            image,
            "-c",
            "import getpass; print(getpass.getuser())",
        )
        assert who.stdout.strip() == "nonroot", who.stderr


def test_trainer_image_writes_an_artifact(tmp_path: Path, names: list[str]) -> None:
    out = train(tmp_path, names)
    result = json.loads((out / "termination-log").read_text())
    files = sorted(p.name for p in (out / "artifact").iterdir())
    assert files == ["manifest.json", "model.json", "reference.json"], result
    digest = (
        "sha256:" + hashlib.sha256((out / "artifact" / "manifest.json").read_bytes()).hexdigest()
    )
    assert digest in json.dumps(result)


def start_server(artifact: Path, digest: str, names: list[str]) -> str:
    """Run the server image on ``artifact`` as a restricted pod would, until it is ready;
    return its base URL (host networking bound to 127.0.0.1: loopback only)."""
    port = free_port()
    names.append(f"modelops-test-server-{os.getpid()}-{len(names)}")
    started = podman(
        "run",
        "--detach",
        f"--name={names[-1]}",
        "--network=host",
        *RESTRICTED,
        f"--volume={artifact}:/artifacts:ro",
        "--env=MODELOPS_SERVER_HOST=127.0.0.1",
        f"--env=MODELOPS_SERVER_PORT={port}",
        "--env=MODELOPS_SERVER_MODEL_NAME=iris",
        "--env=MODELOPS_SERVER_MODEL_VERSION=1",
        f"--env=MODELOPS_SERVER_ARTIFACT_DIGEST={digest}",
        IMAGES["server"],
    )
    assert started.returncode == 0, started.stderr
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    status = 0
    while time.monotonic() < deadline:
        try:
            status, _ = get(f"{base}/v2/health/ready")
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(0.2)
    logs = podman("logs", names[-1]).stdout + podman("logs", names[-1]).stderr
    assert status == 200, logs
    return base


def infer(base: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/v2/models/iris/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        answer: dict[str, Any] = json.load(r)
    return answer


def test_server_image_serves_an_onnx_model_like_the_framework(
    tmp_path: Path, names: list[str]
) -> None:
    # The SDK writes a scikit-learn pipeline exported to ONNX; the image's onnxruntime runs it.
    from tests.unit.test_onnx import iris_artifact

    pipeline, x, written = iris_artifact(tmp_path / "artifact")
    os.chmod(tmp_path / "artifact", 0o755)
    base = start_server(written.directory, written.digest, names)
    rows = x[::10]
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    answer = {output["name"]: output["data"] for output in infer(base, body)["outputs"]}
    assert answer["predict"] == pipeline.predict(rows).tolist()
    probabilities = pipeline.predict_proba(rows).ravel()
    assert (
        max(abs(a - b) for a, b in zip(answer["predict_proba"], probabilities, strict=True)) < 1e-5
    )


def test_server_image_serves_the_trained_artifact(tmp_path: Path, names: list[str]) -> None:
    out = train(tmp_path, names)
    digest = (
        "sha256:" + hashlib.sha256((out / "artifact" / "manifest.json").read_bytes()).hexdigest()
    )
    base = start_server(out / "artifact", digest, names)
    body = {
        "inputs": [
            {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
        ]
    }
    answer = infer(base, body)
    assert answer["model_name"] == "iris"
    assert answer["outputs"], answer
    # Inside: the image's user, no capabilities, a root filesystem that refuses writes.
    inside = podman(
        "exec",
        names[-1],
        "sh",
        "-c",
        "id -u; grep -E 'CapEff|CapBnd' /proc/self/status; touch /x || true",
    )
    lines = (inside.stdout + inside.stderr).splitlines()
    assert lines[0] == "65532"
    # Not just no effective capabilities (any non-root user): none that could ever be gained.
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    assert lines[2].split() == ["CapBnd:", "0000000000000000"]
    assert "Read-only file system" in lines[3]
