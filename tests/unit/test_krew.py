"""The krew distribution of ``kubectl modelops``: the manifest's sha256 is that of a fresh,
reproducible build of the archive, and the launcher in the archive, found by kubectl's plugin
discovery, runs the plugin. No cluster (``--help`` asks no API server)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import yaml

from harness.cluster import REPO
from tests.unit.test_helm import tool

KREW = REPO / "plugins" / "krew"


def build(out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, str(KREW / "build_archive.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(done.stdout.split()[0])


def test_the_manifest_names_a_fresh_build_of_the_archive(tmp_path: Path) -> None:
    manifest = yaml.safe_load((KREW / "modelops.yaml").read_text())
    (platform,) = manifest["spec"]["platforms"]
    archive = build(tmp_path)
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert platform["uri"].endswith("/" + archive.name)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert manifest["spec"]["version"] == f"v{version}"
    assert archive.name == f"kubectl-modelops-v{version}.tar.gz"
    with tarfile.open(archive) as tar:
        assert [m.name for m in tar.getmembers()] == [platform["bin"]]


def test_kubectl_finds_the_launcher_and_runs_the_plugin(tmp_path: Path) -> None:
    with tarfile.open(build(tmp_path)) as tar:
        tar.extractall(tmp_path / "krew-bin", filter="data")
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'krew-bin'}:{os.environ['PATH']}",
        "MODELOPS_PYTHON": sys.executable,
        "KUBECONFIG": str(tmp_path / "none"),
    }
    out = subprocess.run(
        [str(tool("kubectl")), "modelops", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: kubectl modelops")
    for command in ("lineage", "drift", "history", "promote", "rollback", "approve"):
        assert command in out.stdout
