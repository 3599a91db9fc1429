"""The local runner against a real control plane: pods really run, as local processes.

Uses the session ``cluster`` fixture (its runner node carries the label
``type=local-runner``) through nothing but its kubeconfig and kubectl. The tests that stop a
runner start their own one, on a node of their own, so the shared runner keeps serving the
rest of the session. Every wait polls a condition against a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
ON_RUNNER = {"nodeSelector": {"type": "local-runner"}}
STATE_DIR_ANNOTATION = "harness.modelops.dev/state-dir"


class Cluster(Protocol):
    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its reaper does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def container_pid(pod: dict[str, Any], index: int = 0) -> int:
    """The PID behind ``containerID: local-runner://<pid>``."""
    return int(pod["status"]["containerStatuses"][index]["containerID"].rsplit("/", 1)[1])


class Kube:
    """kubectl in one namespace, returning parsed JSON."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.ns = namespace

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.cluster.kubectl("-n", self.ns, *args, input=input, check=check).stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        self.run(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
        )

    def get(self, kind: str, name: str = "", selector: str = "") -> Any:
        args = ["get", kind] + ([name] if name else []) + (["-l", selector] if selector else [])
        out = self.cluster.kubectl("-n", self.ns, *args, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def pods(self, selector: str) -> list[dict[str, Any]]:
        found = self.get("pods", selector=selector)
        return list(found["items"]) if found else []

    def wait_pod(
        self, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            pod = self.get("pod", name)
            return pod if pod and check(pod) else None

        result: dict[str, Any] = wait_for(f"pod {self.ns}/{name}", ready, timeout)
        return result

    def job_pod(self, job: str) -> dict[str, Any]:
        pods = wait_for(f"a pod of job {job}", lambda: self.pods(f"job-name={job}"))
        return dict(pods[0])


def job(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **ON_RUNNER,
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "python:3.11", "command": command, **container}
                    ],
                }
            },
        },
    }


def bare_pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            **ON_RUNNER,
            **spec,
            "containers": [{"name": "main", "image": "python:3.11", "command": command}],
        },
    }


def job_condition(kube: Kube, name: str, kind: str) -> bool:
    found = kube.get("job", name)
    conditions = ((found or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Iterator[Kube]:
    namespace = f"noderunner-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    # The ServiceAccount controller creates "default" shortly after the namespace.
    wait_for(
        "the default ServiceAccount",
        lambda: (
            cluster.kubectl("-n", namespace, "get", "sa", "default", check=False).returncode == 0
        ),
    )
    yield Kube(cluster, namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def runner_state_dir(cluster: Cluster, node: str) -> Path:
    """Where the runner of ``node`` keeps its logs (it says so in a node annotation)."""
    found = json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout)
    return Path(found["metadata"]["annotations"][STATE_DIR_ANNOTATION])


def logs_command(state_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "harness.noderunner", "logs", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=60,
    )
    return done.stdout


# -- Jobs -----------------------------------------------------------------------------------------


def test_job_output_and_termination_message(cluster: Cluster, kube: Kube) -> None:
    program = "print(6*7); open('/dev/termination-log', 'w').write('{\"answer\": 42}')"
    kube.apply(job("answer", ["python", "-c", program]))
    wait_for("job answer to complete", lambda: job_condition(kube, "answer", "Complete"))
    pod = kube.job_pod("answer")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["message"] == '{"answer": 42}'
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["podIP"].startswith("127.")
    name = pod["metadata"]["name"]
    state_dir = runner_state_dir(cluster, pod["spec"]["nodeName"])
    assert logs_command(state_dir, f"{kube.ns}/{name}") == "42\n"
    assert kube.run("logs", "job/answer") == "42\n"  # through the API server's kubelet proxy


def test_failing_job_reports_the_exit_code(kube: Kube) -> None:
    kube.apply(
        job(
            "fails",
            ["python", "-c", "import sys; print('giving up'); sys.exit(3)"],
            terminationMessagePolicy="FallbackToLogsOnError",
        )
    )
    wait_for("job fails to fail", lambda: job_condition(kube, "fails", "Failed"))
    pod = kube.job_pod("fails")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"] == "giving up\n"
    assert pod["status"]["phase"] == "Failed"


def test_crash_loop_is_reported_like_the_kubelet_does(kube: Kube) -> None:
    kube.apply(bare_pod("crashes", ["sh", "-c", "echo oops; exit 1"]))

    def backing_off(pod: dict[str, Any]) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return bool(waiting.get("reason") == "CrashLoopBackOff")

    pod = kube.wait_pod("crashes", backing_off)
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["restartCount"] >= 1
    assert "back-off 10s restarting failed container=main" in status["state"]["waiting"]["message"]
    assert kube.run("logs", "crashes", "--previous") == "oops\n"
    kube.run("delete", "pod", "crashes", "--wait=false")


# -- serving --------------------------------------------------------------------------------------


def test_deployment_becomes_available_only_when_its_probe_passes(
    kube: Kube, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    container = {
        "name": "main",
        "image": "python:3.11",
        "command": [
            "python",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "$(POD_IP)",
            "--directory",
            "/www",
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready.txt", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
    }
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        **ON_RUNNER,
                        "containers": [container],
                        "volumes": [{"name": "www", "hostPath": {"path": str(www)}}],
                    },
                },
            },
        }
    )

    def probed_and_failing() -> list[dict[str, Any]] | None:
        events = kube.get("events")["items"]
        failing = {e["involvedObject"]["name"] for e in events if e["reason"] == "Unhealthy"}
        pods = kube.pods("app=web")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return (
            running
            if len(running) == 2 and all(p["metadata"]["name"] in failing for p in running)
            else None
        )

    pods = wait_for("both pods to run and fail their readiness probe", probed_and_failing)
    for pod in pods:
        assert not pod["status"]["containerStatuses"][0]["ready"]
    assert not kube.get("deployment", "web")["status"].get("availableReplicas")

    (www / "ready.txt").write_text("ready\n")

    def available() -> bool:
        status = kube.get("deployment", "web")["status"]
        return bool(status.get("availableReplicas") == 2)

    wait_for("deployment web to be available", available)
    addresses = {p["status"]["podIP"] for p in kube.pods("app=web")}
    assert len(addresses) == 2, addresses  # distinct loopback addresses, same port
    for address in addresses:
        with urllib.request.urlopen(f"http://{address}:8080/ready.txt", timeout=5) as response:
            assert response.read() == b"ready\n"


def test_service_account_token_works_with_in_cluster_config(kube: Kube) -> None:
    program = (
        "import kubernetes as k; k.config.load_incluster_config();"
        "print(k.client.CoreApi().get_api_versions().versions)"
    )
    kube.apply(bare_pod("in-cluster", ["python", "-c", program], restartPolicy="Never"))
    pod = kube.wait_pod(
        "in-cluster", lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed")
    )
    assert pod["status"]["phase"] == "Succeeded", kube.run("logs", "in-cluster")
    assert kube.run("logs", "in-cluster") == "['v1']\n"


def test_claim_is_shared_between_pods(kube: Kube) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    mount = {"volumeMounts": [{"name": "models", "mountPath": "/models"}]}
    volume = [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}]
    write = bare_pod(
        "writer",
        ["sh", "-c", "echo trained > /models/model.txt"],
        restartPolicy="Never",
        volumes=volume,
    )
    read = bare_pod("reader", ["cat", "/models/model.txt"], restartPolicy="Never", volumes=volume)
    for p in (write, read):
        p["spec"]["containers"][0].update(mount)
    kube.apply(claim, write)
    kube.wait_pod("writer", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    kube.apply(read)
    kube.wait_pod("reader", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    assert kube.run("logs", "reader") == "trained\n"


def test_deleting_a_pod_stops_its_process(kube: Kube) -> None:
    kube.apply(bare_pod("sleeper", ["sleep", "600"], terminationGracePeriodSeconds=5))
    pod = kube.wait_pod("sleeper", lambda p: p.get("status", {}).get("phase") == "Running")
    pid = container_pid(pod)
    assert alive(pid)
    kube.run("delete", "pod", "sleeper", "--wait=false")
    wait_for(f"process {pid} to end", lambda: not alive(pid), timeout=30)
    wait_for("pod sleeper to be gone", lambda: kube.get("pod", "sleeper") is None, timeout=30)


# -- the runner's own end -------------------------------------------------------------------------


@pytest.fixture
def own_runner(
    cluster: Cluster, kube: Kube, tmp_path: Path
) -> Iterator[Callable[[], tuple[subprocess.Popen[bytes], str]]]:
    """Start a separate runner on a node of its own; clean both up afterwards."""
    started: list[tuple[subprocess.Popen[bytes], str]] = []

    def start() -> tuple[subprocess.Popen[bytes], str]:
        node = f"runner-test-{secrets.token_hex(3)}"
        log = (tmp_path / f"{node}.log").open("wb")
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.noderunner",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--node-name",
                node,
                "--state-dir",
                str(tmp_path / node),
                "--ip-prefix",
                f"127.{200 + len(started)}",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        started.append((runner, node))

        def ready() -> bool:
            out = cluster.kubectl("get", "node", node, "-o", "json", check=False)
            if out.returncode != 0:
                return False
            conditions = json.loads(out.stdout)["status"].get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(f"node {node} to be Ready", ready)
        return runner, node

    yield start
    for runner, node in started:
        if runner.poll() is None:
            runner.kill()
        runner.wait()
        cluster.kubectl(
            "delete",
            "pods",
            "-n",
            kube.ns,
            "--field-selector",
            f"spec.nodeName={node}",
            "--force",
            "--grace-period=0",
            check=False,
        )
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)


def pinned(name: str, node: str, command: list[str]) -> dict[str, Any]:
    """A pod bound straight to ``node`` (no scheduler involved)."""
    p = bare_pod(name, command, nodeName=node)
    del p["spec"]["nodeSelector"]
    return p


def test_no_process_survives_the_runner_stopping(
    kube: Kube, own_runner: Callable[[], tuple[subprocess.Popen[bytes], str]]
) -> None:
    runner, node = own_runner()
    # Each container forks a child into its process group: the child must go too.
    forks = ["sh", "-c", "sleep 600 & echo $!; wait"]
    kube.apply(pinned("doomed-1", node, forks), pinned("doomed-2", node, forks))
    pids = []
    for name in ("doomed-1", "doomed-2"):
        pod = kube.wait_pod(name, lambda p: p.get("status", {}).get("phase") == "Running")
        pids.append(container_pid(pod))
        child = wait_for(f"the child of {name} to start", partial(kube.run, "logs", name))
        pids.append(int(child))
    assert all(alive(pid) for pid in pids)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0
    assert [pid for pid in pids if alive(pid)] == []


def test_containers_die_with_a_killed_runner(
    kube: Kube, own_runner: Callable[[], tuple[subprocess.Popen[bytes], str]]
) -> None:
    runner, node = own_runner()
    # Only the container process itself: PR_SET_PDEATHSIG reaches no grandchildren.
    kube.apply(pinned("orphan", node, ["sleep", "600"]))
    pod = kube.wait_pod("orphan", lambda p: p.get("status", {}).get("phase") == "Running")
    pid = container_pid(pod)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait(timeout=30)
    wait_for(f"container process {pid} to die with its runner", lambda: not alive(pid), timeout=30)
