"""Shared fixtures.

Unit tests need nothing. Tests marked ``cluster`` get the session fixture ``cluster``: by
default a local control plane (``harness.cluster``: real etcd, kube-apiserver,
controller-manager, scheduler, a KWOK fake node and two real nodes — upstream kubelet,
containerd, runc, CNI, kube-proxy and CoreDNS running the built images, ``harness.realnode``),
started once on first use and stopped, with every process, mount, network namespace and nft
table it made, when the session ends, also when a test fails or the run is interrupted. Nothing
about the API server or the nodes is mocked.

``--cluster=existing`` runs the same tests against the cluster that ``KUBECONFIG`` points at
(for example one made with ``kind create cluster --config kind-config.yaml``) instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import realnode
from harness.cluster import DEFAULT_BIN_DIR, LocalCluster, run_helm, run_kubectl


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        choices=["local", "existing"],
        default=os.environ.get("MODELOPS_TEST_CLUSTER", "local"),
        help="local: start the local control plane (default); existing: use $KUBECONFIG",
    )


# These need what only the local control plane gives, so against an existing cluster they are
# skipped, saying so: the API server's audit log (training, serving, install, gitops, leader,
# faults, scale count the operator's writes there), files on the harness's hostPath volumes
# (training, serving: artifacts and RETIRED markers), pod IPs reachable from the test process
# (serving, drift, storage), an S3 server on the host at a node link's address (storage), the
# control plane's processes and PKI (faults restart the API server; leader), the trainer image's
# digest read from the nodes' containerd (governance), KWOK nodes (scale), clusters of their
# own (harness). The operator's end-to-end tests through what users install — the chart, `helm
# test`, kustomize, training, serving through the Model's Service, drift, retraining, the
# examples' images, the canary share — run on any cluster whose `type=real-node` nodes hold the
# built images: tests/cluster/test_real_nodes.py.
LOCAL_ONLY = (
    "tests/harness/",
    "tests/cluster/test_training.py",
    "tests/cluster/test_serving.py",
    "tests/cluster/test_drift_e2e.py",
    "tests/cluster/test_install.py",
    "tests/cluster/test_gitops.py",
    "tests/cluster/test_leader.py",
    "tests/cluster/test_governance.py",
    "tests/cluster/test_faults.py",
    "tests/cluster/test_faults_serving.py",
    "tests/cluster/test_scale.py",
    "tests/cluster/test_storage_lifecycle.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--cluster") != "existing":
        return
    skip = pytest.mark.skip(
        reason="needs the local control plane (audit log, hostPath volumes, pod IPs reachable "
        "from the host; tests/conftest.py says which): run without --cluster=existing"
    )
    for item in items:
        path = item.path.relative_to(config.rootpath).as_posix()
        if "cluster" in item.keywords and path.startswith(LOCAL_ONLY):
            item.add_marker(skip)


@dataclass
class ExistingCluster:
    """A cluster someone else runs, reached through ``KUBECONFIG`` with the tools' kubectl and
    helm (``bin_dir``, from ``make tools``), or the ones on ``PATH``."""

    kubeconfig: Path
    bin_dir: Path
    helm_cache: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(
            self.bin_dir, self.kubeconfig, *args, input=input, check=check, timeout=timeout
        )

    def helm(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run helm against the cluster; the caller checks the result."""
        return run_helm(self.bin_dir, self.kubeconfig, self.helm_cache, *args, timeout=timeout)


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster | ExistingCluster]:
    if request.config.getoption("--cluster") == "existing":
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("--cluster=existing needs KUBECONFIG to point at a reachable cluster")
        kubectl = shutil.which("kubectl", path=f"{DEFAULT_BIN_DIR}:{os.environ['PATH']}")
        helm = shutil.which("helm", path=f"{DEFAULT_BIN_DIR}:{os.environ['PATH']}")
        if not (kubectl and helm and Path(kubectl).parent == Path(helm).parent):
            pytest.fail(f"kubectl and helm not found together in {DEFAULT_BIN_DIR}: make tools")
        yield ExistingCluster(
            Path(kubeconfig), Path(kubectl).parent, tmp_path_factory.mktemp("helm-cache")
        )
        return
    # Not a skip: the README promises these tests, and `make test` installs what they need.
    missing = realnode.missing(DEFAULT_BIN_DIR)
    if missing:
        pytest.fail(f"the cluster tests run on real nodes, but {missing}")
    local = LocalCluster(state_dir=tmp_path_factory.mktemp("k8s"), real_nodes=2)
    took = local.up(timeout=300)
    print(f"\nLocal control plane ready in {took:.1f}s ({local.state_dir})")
    try:
        yield local
    finally:
        local.down()
        leftover = local.alive()
        assert not leftover, f"harness processes still alive after teardown: {leftover}"
