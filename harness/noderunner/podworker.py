"""One thread per pod: set up its volumes, run its containers, report its status.

The worker owns the pod from the moment the agent hands it over until the pod is finished:
it reached ``Succeeded``/``Failed``, was deleted (then it stops the containers gracefully and
makes the kubelet's final ``delete`` with grace period 0), vanished from the API (force
deletion: it kills the containers), or the runner is shutting down (it kills them without
telling the API). All decisions are in the pure modules; this file sequences them.

The loop wakes when the pod changes, a process exits, a probe verdict flips, or a timer is due,
and after each step patches the pod status if (and only if) it changed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from harness.noderunner import containerenv, logfiles, process, volumedirs, volumes
from harness.noderunner.backoff import CrashBackoff, go_duration
from harness.noderunner.containerenv import ConfigError, EnvInputs
from harness.noderunner.podstatus import (
    ContainerView,
    PodView,
    Running,
    State,
    Terminated,
    Waiting,
    phase,
    pod_status,
    rfc3339,
)
from harness.noderunner.probes import Prober, ProbeTarget, container_ports, run_probe
from harness.noderunner.probestate import (
    ProbeKind,
    ProbeSpec,
    UnsupportedProbeError,
    container_probes,
)
from harness.noderunner.volumes import (
    Mount,
    TokenRequest,
    UnsupportedVolumeError,
    VolumeNotReadyError,
)

log = logging.getLogger("harness.noderunner")

Obj = dict[str, Any]
#: How often a pod that cannot start yet (missing ConfigMap...) is retried.
RETRY_SECONDS = 3.0
#: How often rendered volumes (ConfigMaps, Secrets, tokens) are refreshed.
REFRESH_SECONDS = 60.0
#: Grace period when a pod disappears from the API without a graceful deletion.
VANISH_GRACE = 2.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNSUPPORTED_REASON = "UnsupportedByLocalRunner"


class UnsupportedFeatureError(Exception):
    """The pod uses a Kubernetes feature the runner does not implement (permanent)."""


class PodApi(Protocol):
    """The API calls a pod worker makes (``kube.Kube`` in production, a fake in tests)."""

    def patch_pod_status(self, namespace: str, name: str, status: Obj) -> None: ...

    def delete_pod(self, namespace: str, name: str, uid: str) -> None: ...

    def get_configmap(self, namespace: str, name: str) -> Obj | None: ...

    def get_secret(self, namespace: str, name: str) -> Obj | None: ...

    def get_pvc(self, namespace: str, name: str) -> Obj | None: ...

    def get_pv(self, name: str) -> Obj | None: ...

    def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str | None,
        seconds: int,
        pod: tuple[str, str],
    ) -> tuple[str, float]: ...

    def create_event(self, namespace: str, event: Obj) -> None: ...


@dataclass(frozen=True)
class NodeContext:
    """What every pod worker of a runner shares."""

    node_name: str
    state_dir: Path
    api_host: str
    api_port: int
    isolate: bool
    allocatable: Mapping[str, str]
    host_ip: str = "127.0.0.1"
    python: str = ""
    #: Host paths of ``python`` and the project, kept visible under volumes (see ``nsexec``).
    runtime_paths: tuple[str, ...] = ()
    runner_pid: int = 0
    max_grace: float = 30.0
    retry_seconds: float = RETRY_SECONDS


def parse_time(value: str | None) -> float | None:
    """Epoch seconds of an API timestamp, or None."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _terminated_from_api(data: Mapping[str, Any]) -> Terminated:
    finished = parse_time(data.get("finishedAt")) or time.time()
    return Terminated(
        exit_code=int(data.get("exitCode", 0)),
        reason=str(data.get("reason", "")),
        finished_at=finished,
        started_at=parse_time(data.get("startedAt")),
        message=str(data.get("message", "")),
        signal=data.get("signal"),
        container_id=str(data.get("containerID", "")),
    )


def should_restart(policy: str, init: bool, exit_code: int) -> bool:
    """Whether an exited container runs again (init containers only re-run after failures)."""
    if policy == "Never":
        return False
    if policy == "OnFailure" or init:
        return exit_code != 0
    return True


@dataclass
class Container:
    """The runner's record of one container across its restarts."""

    spec: Obj
    init: bool
    state: State = field(default_factory=lambda: Waiting("ContainerCreating"))
    last_state: Terminated | None = None
    restart_count: int = 0
    ever_started: bool = False
    done: bool = False
    proc: process.ContainerProcess | None = None
    prober: Prober | None = None
    target: ProbeTarget | None = None
    container_id: str = ""
    backoff: CrashBackoff = field(default_factory=CrashBackoff)
    not_before: float = 0.0
    kill_deadline: float | None = None

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def succeeded(self) -> bool:
        return isinstance(self.state, Terminated) and self.state.exit_code == 0

    def view(self) -> ContainerView:
        running = isinstance(self.state, Running)
        prober = self.prober
        return ContainerView(
            name=self.name,
            image=str(self.spec.get("image", "")),
            state=self.state,
            last_state=self.last_state,
            restart_count=self.restart_count,
            ready=running and (prober is None or prober.ready),
            started=running and (prober is None or prober.started),
            container_id=self.container_id,
        )


class PodWorker:
    """Runs one pod in its own thread (see the module docstring)."""

    def __init__(
        self,
        pod: Obj,
        pod_ip: str,
        ctx: NodeContext,
        api: PodApi,
        on_done: Callable[[PodWorker], None],
    ) -> None:
        meta = pod["metadata"]
        self.name = f"pod {meta['namespace']}/{meta['name']}"
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod_ip = pod_ip
        self.ctx = ctx
        self.api = api
        self.dir = logfiles.pod_dir(ctx.state_dir, self.namespace, self.pod_name, self.uid)
        self._on_done = on_done
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._vanished = False
        self._shutdown_grace: float | None = None
        self._shutdown_deadline = float("inf")
        spec = pod.get("spec") or {}
        self.policy = str(spec.get("restartPolicy") or "Always")
        self.init_containers = [Container(c, True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c, False) for c in spec.get("containers") or []]
        self.start_time = parse_time((pod.get("status") or {}).get("startTime")) or time.time()
        self._failure: tuple[str, str] | None = None
        self._blocked: tuple[str, str] | None = None
        self._plans: dict[str, volumes.VolumePlan] | None = None
        self._tokens: dict[TokenRequest, tuple[str, float, float]] = {}
        self._refresh_at = 0.0
        self._volumes_ok = False
        self._last_status: Obj | None = None
        self._conditions: list[Obj] = list((pod.get("status") or {}).get("conditions") or [])
        self._terminal = False
        self._stopping = False
        self._publish_retry_at = 0.0
        self._recover(pod.get("status") or {})

    # -- called from other threads ------------------------------------------------------------

    def update(self, pod: Obj) -> None:
        """A newer version of the pod from the API."""
        with self._lock:
            self._pod = pod
        self._wake.set()

    def vanish(self) -> None:
        """The pod is gone from the API (force-deleted): kill its containers."""
        self._vanished = True
        self._wake.set()

    def shutdown(self, grace: float) -> None:
        """The runner stops: end every container (SIGTERM, SIGKILL after ``grace``)."""
        self._shutdown_grace = grace
        self._shutdown_deadline = time.monotonic() + grace
        self._wake.set()

    def container_state(self, container: str) -> str | None:
        """``running``, ``restarting`` (waiting to run again) or None, for the log server."""
        for c in (*self.init_containers, *self.containers):
            if c.name != container:
                continue
            if c.proc is not None and c.proc.exit is None:
                return "running"
            if not c.done and c.last_state is not None:
                return "restarting"
        return None

    # -- the loop -------------------------------------------------------------------------------

    @property
    def pod(self) -> Obj:
        with self._lock:
            return self._pod

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod_name}"

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            os.utime(self.dir)  # the newest directory of a pod name is the live one
            # The container order, for `logs` without -c (like kubectl: the first container).
            pod = self.pod
            (self.dir / "pod.json").write_text(
                json.dumps({"metadata": pod.get("metadata"), "spec": pod.get("spec")}, indent=1)
            )
            self._loop()
        except Exception:
            log.exception("Pod worker for %s failed; killing its containers", self.key)
            self._kill_all(0)
        finally:
            for c in (*self.init_containers, *self.containers):
                if c.prober:
                    c.prober.stop()
            self._on_done(self)

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            if self._shutdown_grace is not None:
                self._kill_all(self._shutdown_grace)
                return
            if self._vanished:
                log.info("Pod %s is gone from the API; killing its containers", self.key)
                self._kill_all(VANISH_GRACE)
                volumedirs.remove_pod_volumes(self.dir)
                return
            if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
                self._terminate()
                return
            now = time.time()
            self._step(now)
            published = self._publish(now)
            # A terminal pod is done only once its final status is written: a failed write (the
            # API server restarting, say) is retried, or the Job would wait for it forever.
            if self._terminal and published:
                log.info("Pod %s finished with phase %s", self.key, self._phase())
                return
            self._wake.wait(self._sleep_seconds(now))

    def _sleep_seconds(self, now: float) -> float:
        deadlines = [c.not_before for c in self._all() if c.not_before > now]
        deadlines += [c.kill_deadline for c in self._all() if c.kill_deadline]
        deadlines += [self._refresh_at, self._publish_retry_at]
        soonest = min((d for d in deadlines if d > now), default=now + 5.0)
        return max(0.05, min(soonest - now, 5.0))

    def _all(self) -> list[Container]:
        return [*self.init_containers, *self.containers]

    # -- one step -------------------------------------------------------------------------------

    def _step(self, now: float) -> None:
        if self._failure is None:
            self._check_deadline(now)
        if self._failure is not None:
            self._kill_all(self._grace())
            self._terminal = True
            return
        if not self._volumes_ready(now):
            return
        for c in self.init_containers:
            if not c.succeeded:
                self._drive(c, now)
            if c.succeeded:
                continue  # straight on to the next one, in this same step
            if c.done:
                self._terminal = True
            return
        for c in self.containers:
            self._drive(c, now)
        if all(c.done for c in self.containers):
            self._terminal = True

    def _check_deadline(self, now: float) -> None:
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None and now - self.start_time >= float(deadline):
            log.info("Pod %s exceeded its active deadline of %ss", self.key, deadline)
            self._failure = (
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )

    def _unsupported(self, message: str) -> None:
        """A feature the runner lacks: fail pods that would not restart, block the others."""
        self._event("Warning", "Failed", message)
        if self.policy == "Always":
            if self._blocked is None:
                log.warning("Pod %s cannot run here: %s", self.key, message)
            self._blocked = ("CreateContainerConfigError", message)
            for c in self._all():
                if c.proc is None:
                    c.state = Waiting(*self._blocked)
        else:
            log.warning("Failing pod %s: %s", self.key, message)
            self._failure = (UNSUPPORTED_REASON, message)
            for c in self._all():
                if c.proc is None and not c.done:
                    c.state = Waiting("CreateContainerConfigError", message)

    # -- volumes --------------------------------------------------------------------------------

    def _claim_path(self, claim: str) -> Path:
        pvc = self.api.get_pvc(self.namespace, claim)
        volume_name = ((pvc or {}).get("spec") or {}).get("volumeName")
        pv_spec = ((self.api.get_pv(volume_name) if volume_name else None) or {}).get("spec") or {}
        backing = (pv_spec.get("hostPath") or pv_spec.get("local") or {}).get("path")
        path = Path(backing) if backing else self.ctx.state_dir / "pvc" / self.namespace / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _token(self, request: TokenRequest, now: float) -> str:
        cached = self._tokens.get(request)
        # Renew at 80% of the lifetime (or after a day), like the kubelet.
        if cached and now < cached[1] + min(0.8 * (cached[2] - cached[1]), 86400):
            return cached[0]
        account = (self.pod.get("spec") or {}).get("serviceAccountName") or "default"
        token, expires = self.api.request_token(
            self.namespace,
            account,
            request.audience,
            request.expiration_seconds,
            (self.pod_name, self.uid),
        )
        self._tokens[request] = (token, now, expires)
        return token

    def _volumes_ready(self, now: float) -> bool:
        """Plan volumes once, (re)write rendered ones when due; False until they first are.

        A failed refresh later on keeps the old files (and the pod running) and is retried.
        """
        if self._blocked and self._plans is None:
            return False
        try:
            if self._plans is None:
                self._plans = volumes.plan(self.pod, self.dir, self._claim_path)
                for volume in (self.pod.get("spec") or {}).get("volumes") or []:
                    if volume.get("hostPath"):
                        volumedirs.prepare_host_path(volume["hostPath"])
                    if volume.get("emptyDir") is not None:
                        volumedirs.make_shared_dir(self._plans[volume["name"]].path)
            if now >= self._refresh_at:
                self._render(now)
                self._refresh_at = now + REFRESH_SECONDS
        except UnsupportedVolumeError as e:
            self._unsupported(str(e))
            return False
        except Exception as e:  # a missing ConfigMap, an API error: retry
            message = str(e) if isinstance(e, VolumeNotReadyError) else f"{type(e).__name__}: {e}"
            self._refresh_at = now + self.ctx.retry_seconds
            if self._volumes_ok:
                log.warning("Could not refresh the volumes of pod %s: %s", self.key, message)
                return True
            self._volume_problem(message)
            return False
        self._volumes_ok = True
        for c in self._all():
            if isinstance(c.state, Waiting) and c.state.reason == "ContainerCreating":
                c.state = Waiting(
                    "PodInitializing" if self._waiting_for_init(c) else "ContainerCreating"
                )
        return True

    def _volume_problem(self, message: str) -> None:
        text = f"MountVolume.SetUp failed: {message}"
        first_time = not any(
            isinstance(c.state, Waiting) and c.state.message == text for c in self._all()
        )
        if first_time:
            log.warning("Pod %s: %s", self.key, text)
            self._event("Warning", "FailedMount", text)
        for c in self._all():
            if not c.ever_started:
                c.state = Waiting("ContainerCreating", text)

    def _render(self, now: float) -> None:
        assert self._plans is not None
        refs = volumes.references(self.pod)
        inputs = volumes.RenderInputs(
            pod=self.pod,
            pod_ip=self.pod_ip,
            host_ip=self.ctx.host_ip,
            configmaps={n: self.api.get_configmap(self.namespace, n) for n in refs.configmaps},
            secrets={n: self.api.get_secret(self.namespace, n) for n in refs.secrets},
            tokens={t: self._token(t, now) for t in refs.tokens},
            allocatable=self.ctx.allocatable,
        )
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            plan = self._plans[volume["name"]]
            if plan.rendered:
                volumedirs.write_files(plan.path, volumes.render(volume, inputs))

    def _waiting_for_init(self, c: Container) -> bool:
        return not c.init and not all(i.succeeded for i in self.init_containers)

    # -- containers -------------------------------------------------------------------------------

    def _drive(self, c: Container, now: float) -> None:
        """Advance one container: notice its exit, kill it if unhealthy, (re)start it."""
        if c.proc is not None:
            ended = c.proc.poll()
            if ended is None:
                self._check_health(c, now)
                return
            self._exited(c, ended, now)
        if c.done or now < c.not_before or self._blocked:
            return
        self._start(c, now)

    def _check_health(self, c: Container, now: float) -> None:
        assert c.proc is not None
        if c.kill_deadline is not None:
            if now >= c.kill_deadline:
                c.proc.signal_group(signal.SIGKILL)
            return
        prober = c.prober
        if prober is None:
            return
        fatal: tuple[ProbeKind, ...] = ("liveness", "startup")
        for kind in fatal:
            tracker = prober.trackers.get(kind)
            if tracker is not None and tracker.result is False:
                message = f"Container {c.name} failed {kind} probe, will be restarted"
                log.info("%s (pod %s): %s", message, self.key, tracker.message.strip())
                self._event(
                    "Warning",
                    "Unhealthy",
                    f"{kind.capitalize()} probe failed: {tracker.message}",
                    c,
                )
                self._event("Normal", "Killing", message, c)
                grace = tracker.spec.termination_grace
                self._signal(c, signal.SIGTERM, now, self._grace() if grace is None else grace)
                return

    def _signal(self, c: Container, sig: int, now: float, grace: float) -> None:
        assert c.proc is not None
        c.proc.signal_group(sig)
        c.kill_deadline = now + min(grace, self.ctx.max_grace)

    def _exited(self, c: Container, ended: process.Exit, now: float) -> None:
        assert c.proc is not None
        if c.prober:
            c.prober.stop()
            c.prober = None
        started = c.proc.started_at
        c.proc = None
        c.kill_deadline = None
        policy = str(c.spec.get("terminationMessagePolicy") or "File")
        try:
            message_file = logfiles.termination_path(self.dir, c.name).read_bytes()
        except OSError:
            message_file = b""
        log_tail = b""
        if not message_file and policy == "FallbackToLogsOnError" and ended.exit_code != 0:
            log_tail = _read_tail(logfiles.log_path(self.dir, c.name))
        term = Terminated(
            exit_code=ended.exit_code,
            reason="Completed" if ended.exit_code == 0 else "Error",
            finished_at=ended.finished_at,
            started_at=started,
            message=logfiles.termination_message(message_file, log_tail, policy, ended.exit_code),
            signal=ended.signal,
            container_id=c.container_id,
        )
        log.info(
            "Container %s of pod %s exited with code %d%s",
            c.name,
            self.key,
            ended.exit_code,
            f" (signal {ended.signal})" if ended.signal else "",
        )
        self._settle(c, term, now)

    def _settle(self, c: Container, term: Terminated, now: float) -> None:
        """After an exit (or a failed start): restart later, or stay terminated for good."""
        if self._stopping or not should_restart(self.policy, c.init, term.exit_code):
            c.state, c.done = term, True
            return
        c.last_state = term
        wait = c.backoff.remaining(term.finished_at, now)
        c.not_before = now + wait
        if wait > 0:
            delay = go_duration(c.backoff.duration)
            c.state = Waiting(
                "CrashLoopBackOff",
                f"back-off {delay} restarting failed container={c.name} "
                f"pod={self.pod_name}_{self.namespace}({self.uid})",
            )
            log.info(
                "Back-off %s restarting failed container %s of pod %s", delay, c.name, self.key
            )
            self._event("Warning", "BackOff", "Back-off restarting failed container", c)

    def _base_env(self) -> dict[str, str]:
        spec = self.pod.get("spec") or {}
        host, port = self.ctx.api_host, str(self.ctx.api_port)
        python_dir = os.path.dirname(self.ctx.python)
        env = {
            "PATH": f"{python_dir}:{os.environ.get('PATH') or DEFAULT_PATH}",
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self._hostname(),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "POD_IP": self.pod_ip,
        }
        if not self.ctx.isolate and self._plans:
            env.update({volumes.env_name(n): str(p.path) for n, p in self._plans.items()})
        if spec.get("hostNetwork"):
            env["HOSTNAME"] = os.uname().nodename
        return env

    def _hostname(self) -> str:
        spec = self.pod.get("spec") or {}
        return str(spec.get("hostname") or self.pod_name)[:63]

    def _env(self, spec: Obj) -> dict[str, str]:
        configmaps, secret_names = containerenv.referenced_objects(spec)
        inputs = EnvInputs(
            pod=self.pod,
            pod_ip=self.pod_ip,
            host_ip=self.ctx.host_ip,
            configmaps={n: self.api.get_configmap(self.namespace, n) for n in configmaps},
            secrets={n: self.api.get_secret(self.namespace, n) for n in secret_names},
            allocatable=self.ctx.allocatable,
        )
        return containerenv.build_env(spec, self._base_env(), inputs)

    def _system_mounts(self, c: Container) -> list[Mount]:
        """The per-container files the kubelet provides: termination log, hosts, hostname."""
        message_file = logfiles.termination_path(self.dir, c.name)
        message_file.write_bytes(b"")
        message_file.chmod(0o666)
        path = str(c.spec.get("terminationMessagePath") or "/dev/termination-log")
        mounts = [Mount(str(message_file), path)]
        if not (self.pod.get("spec") or {}).get("hostNetwork"):
            hosts = self.dir / "etc-hosts"
            hosts.write_text(
                "# Kubernetes-managed hosts file (local runner).\n"
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                f"{self.pod_ip}\t{self._hostname()}\n"
            )
            hostname = self.dir / "etc-hostname"
            hostname.write_text(self._hostname() + "\n")
            mounts += [Mount(str(hosts), "/etc/hosts"), Mount(str(hostname), "/etc/hostname")]
        return mounts

    def _launch_spec(self, c: Container, env: dict[str, str]) -> process.LaunchSpec:
        assert self._plans is not None
        argv = containerenv.command_line(c.spec, env, self.ctx.python)
        mounts = volumes.container_mounts(c.spec, self._plans, env)
        for m in mounts:
            volumedirs.prepare_source(self._plans[m.volume], Path(m.source))
        if self.ctx.isolate:
            mounts = [*self._system_mounts(c), *mounts]
        return process.LaunchSpec(
            argv=argv,
            env=env,
            cwd=str(c.spec.get("workingDir") or "/"),
            log_path=logfiles.log_path(self.dir, c.name),
            spec_path=self.dir / f"{c.name}.spec.json",
            scratch=self.dir / "rootfs" / c.name,
            isolate=self.ctx.isolate,
            hostname="" if (self.pod.get("spec") or {}).get("hostNetwork") else self._hostname(),
            mounts=mounts,
            keep=list(self.ctx.runtime_paths),
        )

    def _start(self, c: Container, now: float) -> None:
        try:
            if c.init and c.spec.get("restartPolicy") == "Always":
                raise UnsupportedFeatureError(
                    f"init container {c.name}: sidecar containers (restartPolicy: Always) "
                    "are not supported by the local runner"
                )
            probes = container_probes(c.spec)
            env = self._env(c.spec)
            launch = self._launch_spec(c, env)
        except (UnsupportedFeatureError, UnsupportedProbeError, UnsupportedVolumeError) as e:
            self._unsupported(str(e))
            return
        except (ConfigError, VolumeNotReadyError) as e:
            self._config_problem(c, now, str(e))
            return
        except Exception as e:  # API trouble while resolving references: retry
            self._config_problem(c, now, f"{type(e).__name__}: {e}")
            return
        if c.ever_started:
            c.restart_count += 1
            c.backoff.restarted(now)
        c.ever_started = True
        try:
            c.proc = process.start(launch, self.ctx.runner_pid)
        except process.ContainerStartError as e:
            log.warning("Failed to start container %s of pod %s: %s", c.name, self.key, e.message)
            self._event("Warning", "Failed", f"Error: {e.message}", c)
            self._settle(c, Terminated(128, e.reason, time.time(), time.time(), e.message), now)
            return
        c.container_id = f"local-runner://{c.proc.pid}"
        c.state = Running(c.proc.started_at)
        c.kill_deadline = None
        threading.Thread(
            target=self._await_exit, args=(c.proc,), name=f"{self.name} {c.name} wait", daemon=True
        ).start()
        c.target = ProbeTarget(
            pod_ip=self.pod_ip,
            ports=container_ports(c.spec),
            env=env,
            pid=c.proc.pid,
            isolate=self.ctx.isolate,
            python=self.ctx.python,
        )
        if probes:
            c.prober = Prober(f"{self.name} {c.name} probes", probes, c.target, self._on_probe)
            c.prober.start()
        log.info("Started container %s of pod %s (pid %d)", c.name, self.key, c.proc.pid)
        self._event("Normal", "Started", f"Started container {c.name}", c)

    def _await_exit(self, proc: process.ContainerProcess) -> None:
        proc.wait()
        self._wake.set()

    def _on_probe(self, kind: ProbeKind, ok: bool, message: str) -> None:
        if not ok and kind == "readiness":
            self._event("Warning", "Unhealthy", f"Readiness probe failed: {message}")
        self._wake.set()

    def _config_problem(self, c: Container, now: float, message: str) -> None:
        if not (isinstance(c.state, Waiting) and c.state.message == message):
            log.warning("Cannot start container %s of pod %s yet: %s", c.name, self.key, message)
            self._event("Warning", "Failed", f"Error: {message}", c)
        c.state = Waiting("CreateContainerConfigError", message)
        c.not_before = now + self.ctx.retry_seconds

    # -- stopping ---------------------------------------------------------------------------------

    def _grace(self) -> float:
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
        return min(float(30 if grace is None else grace), self.ctx.max_grace)

    def _pre_stop(self, live: list[Container], grace: float) -> None:
        """Run the containers' ``preStop`` hooks (exec, httpGet, sleep) side by side.

        They share the grace period with the SIGTERM that follows, as with the kubelet.
        """
        hooks = []
        for c in live:
            hook = (c.spec.get("lifecycle") or {}).get("preStop")
            if hook and c.target is not None and c.proc is not None and c.proc.poll() is None:
                hooks.append(threading.Thread(target=self._run_hook, args=(c, hook, grace)))
        for t in hooks:
            t.start()
        for t in hooks:
            t.join(grace + 1)

    def _run_hook(self, c: Container, hook: Obj, grace: float) -> None:
        assert c.target is not None
        if hook.get("sleep"):
            time.sleep(min(float(hook["sleep"].get("seconds") or 0), grace))
            return
        handler = next((h for h in ("exec", "httpGet", "tcpSocket") if hook.get(h)), None)
        if handler is None:
            return
        ok, message = run_probe(
            ProbeSpec("liveness", handler, hook[handler], timeout=grace), c.target
        )
        if not ok:
            log.warning(
                "PreStop hook of container %s of pod %s failed: %s", c.name, self.key, message
            )
            self._event("Warning", "FailedPreStopHook", f"PreStopHook failed: {message}", c)

    def _kill_all(self, grace: float, hooks: bool = False) -> None:
        """Stop for good: SIGTERM every container, SIGKILL what is left after ``grace``.

        With ``hooks`` (a graceful deletion), ``preStop`` hooks run first, within the grace.
        """
        self._stopping = True
        live = [c for c in self._all() if c.proc is not None]
        deadline = time.monotonic() + grace
        if hooks:
            self._pre_stop(live, grace)
        for c in live:
            assert c.proc is not None
            if c.proc.poll() is None:
                log.info(
                    "Killing container %s of pod %s with a grace period of %gs",
                    c.name,
                    self.key,
                    grace,
                )
                c.proc.signal_group(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        for c in live:
            assert c.proc is not None
            # A runner shutdown shortens a long deletion grace period to its own.
            while c.proc.poll() is None and time.monotonic() < min(
                deadline, self._shutdown_deadline
            ):
                c.proc.wait(0.1)
            if c.proc.poll() is None:
                c.proc.signal_group(signal.SIGKILL)
                c.proc.wait()
        now = time.time()
        for c in live:
            assert c.proc is not None
            assert c.proc.exit is not None
            self._exited(c, c.proc.exit, now)

    def _terminate(self) -> None:
        """Graceful deletion: stop everything, report the final status, delete the pod."""
        grace = self._grace()
        if any(c.proc is not None for c in self._all()):
            self._event("Normal", "Killing", f"Stopping pod with a grace period of {grace:g}s")
        self._kill_all(grace, hooks=True)
        now = time.time()
        self._publish(now, terminal=True)
        try:
            self.api.delete_pod(self.namespace, self.pod_name, self.uid)
            log.info("Deleted pod %s", self.key)
        except Exception as e:
            status = getattr(e, "status", None)
            if status not in (404, 409):
                log.warning("Could not delete pod %s: %s", self.key, e)
        volumedirs.remove_pod_volumes(self.dir)

    # -- status -----------------------------------------------------------------------------------

    def view(self, terminal: bool = False) -> PodView:
        pod = self.pod
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        return PodView(
            restart_policy=self.policy,
            init_containers=[c.view() for c in self.init_containers],
            containers=[c.view() for c in self.containers],
            pod_ip=self.pod_ip,
            host_ip=self.ctx.host_ip,
            start_time=self.start_time,
            terminal=terminal,
            failure=self._failure,
            readiness_gates=[g.get("conditionType", "") for g in spec.get("readinessGates") or []],
            other_conditions={
                c.get("type", ""): c.get("status", "") for c in status.get("conditions") or []
            },
        )

    def _phase(self) -> str:
        return phase(self.view())

    def _publish(self, now: float, terminal: bool = False) -> bool:
        """Patch the pod status if it differs from what was last written.

        Returns whether the API now holds the current status (False: retry after a failed write,
        or the pod is gone and the loop cleans up).
        """
        status = pod_status(self.view(terminal), self._conditions, now)
        if status == self._last_status:
            return True
        try:
            self.api.patch_pod_status(self.namespace, self.pod_name, status)
        except Exception as e:
            if getattr(e, "status", None) == 404:
                self._vanished = True
                self._wake.set()
                return False
            log.warning("Could not update the status of pod %s: %s", self.key, e)
            self._publish_retry_at = now + 1.0
            return False
        if self._last_status is None or status["phase"] != self._last_status.get("phase"):
            log.info("Pod %s is %s", self.key, status["phase"])
        self._last_status = status
        self._conditions = status["conditions"]
        return True

    def _event(self, kind: str, reason: str, message: str, c: Container | None = None) -> None:
        """Record a core/v1 Event about the pod (best effort: events are for humans)."""
        now = rfc3339(time.time())
        involved: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.pod_name,
            "namespace": self.namespace,
            "uid": self.uid,
        }
        if c is not None:
            section = "initContainers" if c.init else "containers"
            involved["fieldPath"] = f"spec.{section}{{{c.name}}}"
        event: Obj = {
            "metadata": {
                "name": f"{self.pod_name}.{secrets.token_hex(8)}",
                "namespace": self.namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.ctx.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.ctx.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.create_event(self.namespace, event)
        except Exception as e:
            log.debug("Could not record event %s for pod %s: %s", reason, self.key, e)

    # -- recovery after a runner restart ----------------------------------------------------------

    def _recover(self, status: Mapping[str, Any]) -> None:
        """Continue from the status a previous runner reported: its processes are gone."""
        reported = {
            s.get("name"): s
            for key in ("initContainerStatuses", "containerStatuses")
            for s in status.get(key) or []
        }
        for c in self._all():
            seen = reported.get(c.name)
            if not seen:
                continue
            c.restart_count = int(seen.get("restartCount") or 0)
            state = seen.get("state") or {}
            last = (seen.get("lastState") or {}).get("terminated")
            if state.get("terminated"):
                term = _terminated_from_api(state["terminated"])
            elif state.get("running"):
                term = Terminated(
                    137,
                    "ContainerStatusUnknown",
                    time.time(),
                    parse_time(state["running"].get("startedAt")),
                    "The container could not be located when the local runner restarted",
                    container_id=str(seen.get("containerID", "")),
                )
            elif last:
                c.last_state, c.ever_started = _terminated_from_api(last), True
                continue
            else:
                continue
            c.ever_started = True
            if should_restart(self.policy, c.init, term.exit_code):
                c.last_state = term
            else:
                c.state, c.done = term, True
                c.last_state = _terminated_from_api(last) if last else None


def _read_tail(path: Path) -> bytes:
    """The end of a log file, enough for ``FallbackToLogsOnError``."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            return f.read()
    except OSError:
        return b""
