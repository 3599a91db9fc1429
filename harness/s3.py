"""A real S3-compatible server on loopback, for tests that store model artifacts in S3.

The server is the Versity S3 Gateway (``versitygw``, Apache-2.0) with its POSIX backend: each
bucket is a directory under ``<state-dir>/s3/data`` and each object a file in it. It is built from
its Go module by ``hack/build-tools.sh s3`` into the tools directory (``DEFAULT_BIN_DIR``).

``S3Server.start(state_dir)`` runs it on a free port of 127.0.0.1 (or of ``host``) with a
freshly generated access key and secret key, and waits until a signed request succeeds. Its
layout in ``state_dir`` is the cluster's (``harness.cluster``): the log is ``logs/s3.log`` and
the PID is recorded in ``run/s3.pid``, so with the cluster's own state directory
``LocalCluster.down`` stops it too, as it does Prometheus. ``stop()`` (or leaving the ``with``
block) stops the process group it started.

Clients use path-style addressing (``http://127.0.0.1:PORT/bucket/key``)::

    with S3Server(state_dir) as s3:  # or S3Server().start(state_dir) ... stop()
        s3.create_bucket("models")
        boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key, ...)

The harness itself needs no S3 client: ``create_bucket`` signs its one request (AWS Signature
Version 4) with the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from harness.cluster import DEFAULT_BIN_DIR, ClusterError, die_with_parent, free_port, record_pid

BINARY = "versitygw"
NAME = "s3"  # run/s3.pid, logs/s3.log


class S3Error(ClusterError):
    """The S3 server could not be started, or refused a request of the harness."""


class S3Server:
    """One ``versitygw`` process with a single root account (``access_key``/``secret_key``).

    ``state_dir`` may be given here, to use the object as a context manager, or to ``start``.
    """

    region = "us-east-1"

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        bin_dir: Path = DEFAULT_BIN_DIR,
        detached: bool = False,
        timeout: float = 60,
        host: str = "127.0.0.1",
    ) -> None:
        self.state_dir = state_dir
        self.host = host
        """The address it listens on: loopback, or one that pods on real nodes reach too (the
        host's end of a node's link)."""
        self.bin_dir = bin_dir
        self.detached = detached
        """Outlive the Python process (no ``PR_SET_PDEATHSIG``); stop it with ``stop``."""
        self.timeout = timeout
        # 20 upper-case characters like an AWS access key id, 40 like its secret.
        self.access_key = "MODELOPS" + secrets.token_hex(6).upper()
        self.secret_key = secrets.token_hex(20)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # -- where -------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT``: the ``endpoint_url`` for boto3."""
        if not self.port:
            raise S3Error("the S3 server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The POSIX backend's root: one directory per bucket."""
        return self._state() / NAME / "data"

    @property
    def log_file(self) -> Path:
        return self._state() / "logs" / f"{NAME}.log"

    @property
    def pid_file(self) -> Path:
        return self._state() / "run" / f"{NAME}.pid"

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (1.28.57 and later) and the AWS CLI at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, state_dir: Path | None = None) -> None:
        """Start the server and wait (bounded by ``timeout``) until it answers a signed request."""
        if self._proc is not None:
            raise S3Error(f"the S3 server already runs (pid {self._proc.pid})")
        if state_dir is not None:
            self.state_dir = state_dir
        binary = self.bin_dir / BINARY
        if not binary.is_file():
            raise S3Error(f"{binary} is missing: run `hack/build-tools.sh s3`")
        iam_dir = self._state() / NAME / "iam"
        for d in (self.data_dir, iam_dir, self.log_file.parent, self.pid_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        if self.pid_file.exists():
            raise S3Error(f"{self._state()} already has a running S3 server: stop it first")
        self.port = free_port()
        argv = [
            str(binary),
            f"--port={self.host}:{self.port}",
            f"--region={self.region}",
            # The internal IAM (an empty store: only the root account exists) answers an unknown
            # access key with the standard InvalidAccessKeyId; without it, single-account mode
            # answers 404 XAdminUserNotFound.
            f"--iam-dir={iam_dir}",
            "posix",
            str(self.data_dir),
        ]
        # The keys go in the environment, not in argv where every `ps` shows them.
        env = {**os.environ, "ROOT_ACCESS_KEY": self.access_key, "ROOT_SECRET_KEY": self.secret_key}
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._state(),
                env=env,
                start_new_session=True,
                preexec_fn=None if self.detached else die_with_parent,
            )
        record_pid(self.pid_file.parent, NAME, self._proc.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 10) -> None:
        """Stop the process group it started (SIGTERM, then SIGKILL) and forget its PID
        (``versitygw`` starts no children of its own).

        Safe to call twice, and after ``LocalCluster.down`` already stopped it.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)  # reaps it: no zombie stays behind
        if self.state_dir is not None:
            self.pid_file.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``; one this account already owns is fine."""
        status, body = self.request("PUT", f"/{name}")
        if status == 200 or (status == 409 and b"BucketAlreadyOwnedByYou" in body):
            return
        raise S3Error(f"CreateBucket {name!r}: HTTP {status}: {body.decode(errors='replace')}")

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """One request signed with the root account's keys (SigV4): (HTTP status, body).

        ``path`` is ``/bucket[/key]`` (path-style), without a query string.
        """
        now = datetime.now(UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        payload = hashlib.sha256(body).hexdigest()
        headers = {
            "host": f"{self.host}:{self.port}",
            "x-amz-content-sha256": payload,
            "x-amz-date": amz_date,
        }
        signed = ";".join(sorted(headers))
        uri = urllib.parse.quote(path, safe="/-_.~")
        canonical = "\n".join(
            [method, uri, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
        )
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = f"AWS4{self.secret_key}".encode()
        for part in scope.split("/"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        req = urllib.request.Request(
            f"{self.endpoint}{uri}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read()

    # -- helpers -----------------------------------------------------------------------------

    def _state(self) -> Path:
        if self.state_dir is None:
            raise S3Error("no state directory: pass one to S3Server() or start()")
        return self.state_dir

    def _wait_ready(self) -> None:
        """Poll ListBuckets until it answers 200; fail early, with the log, if the server exits."""
        deadline = time.monotonic() + self.timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise S3Error(f"{BINARY} exited during start-up; log:\n{self._log_tail()}")
            try:
                status, body = self.request("GET", "/")
            except OSError as err:  # not listening yet
                last = str(err)
            else:
                if status == 200:
                    return
                last = f"HTTP {status}: {body.decode(errors='replace')[:300]}"
            time.sleep(0.1)
        raise S3Error(
            f"{BINARY} did not answer in {self.timeout:.0f}s ({last}); log:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-3000:]
        return ""
