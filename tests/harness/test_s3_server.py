"""The S3 server of the harness (``harness.s3``) against a real S3 client, obstore (the
Rust ``object_store`` crate, which ``modelops.storage`` uses).

The server (``versitygw``) is built by ``hack/build-tools.sh s3``; without it these tests fail
rather than skip, so a missing tool never passes for a green run. Objects are addressed
path-style, which is how the trainer and the model server reach
``http://127.0.0.1:PORT/bucket/key``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import obstore
import pytest
from obstore.exceptions import PermissionDeniedError
from obstore.store import S3Store

from harness.cluster import DEFAULT_BIN_DIR
from harness.s3 import BINARY, S3Server

BUCKET = "artifacts"
PREFIX = "models/iris/1/"


def require_binary() -> None:
    """Fail (never skip) when the server was not built."""
    if not (DEFAULT_BIN_DIR / BINARY).is_file():
        pytest.fail(f"{DEFAULT_BIN_DIR / BINARY} is missing: run `hack/build-tools.sh s3`")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[S3Server]:
    require_binary()
    with S3Server(tmp_path) as s3:
        yield s3
    assert not s3.running
    assert not s3.pid_file.exists()


def client(s3: S3Server, access_key: str | None = None, secret_key: str | None = None) -> S3Store:
    return S3Store(
        BUCKET,
        endpoint=s3.endpoint,
        access_key_id=access_key or s3.access_key,
        secret_access_key=secret_key or s3.secret_key,
        region=s3.region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        retry_config={
            "max_retries": 0,
            "backoff": {
                "init_backoff": timedelta(milliseconds=50),
                "max_backoff": timedelta(milliseconds=100),
                "base": 2,
            },
            "retry_timeout": timedelta(seconds=5),
        },
    )


def listed(store: S3Store, prefix: str) -> dict[str, int]:
    return {m["path"]: m["size"] for batch in obstore.list(store, prefix=prefix) for m in batch}


def test_upload_list_download_delete(server: S3Server) -> None:
    server.create_bucket(BUCKET)
    server.create_bucket(BUCKET)  # again: already owned, not an error
    assert (server.data_dir / BUCKET).is_dir()
    store = client(server)
    model = os.urandom(3000)
    obstore.put(store, f"{PREFIX}model.onnx", model)
    # Large enough for a multipart upload, as a trainer sends a big model file.
    weights = os.urandom(12 * 1024 * 1024)
    obstore.put(store, f"{PREFIX}weights.bin", weights, chunk_size=5 * 1024 * 1024)
    obstore.put(store, "models/other/1/model.onnx", b"other")

    assert listed(store, PREFIX) == {
        f"{PREFIX}model.onnx": len(model),
        f"{PREFIX}weights.bin": len(weights),
    }
    top = obstore.list_with_delimiter(store, prefix="models/")
    assert sorted(top["common_prefixes"]) == ["models/iris", "models/other"]
    assert bytes(obstore.get(store, f"{PREFIX}model.onnx").bytes()) == model
    ranged = obstore.get_range(store, f"{PREFIX}weights.bin", start=100, end=200)
    assert bytes(ranged) == weights[100:200]

    obstore.delete(store, [f"{PREFIX}model.onnx", f"{PREFIX}weights.bin"])
    assert listed(store, PREFIX) == {}
    with pytest.raises(FileNotFoundError):
        obstore.get(store, f"{PREFIX}model.onnx")


def test_wrong_credentials_are_refused(server: S3Server) -> None:
    server.create_bucket(BUCKET)
    obstore.put(client(server), "secret.txt", b"x")
    with pytest.raises(PermissionDeniedError, match="SignatureDoesNotMatch"):
        obstore.get(client(server, secret_key="0" * 40), "secret.txt")
    with pytest.raises(PermissionDeniedError, match="InvalidAccessKeyId"):
        obstore.get(client(server, access_key="AKIAUNKNOWNUNKNOWN00"), "secret.txt")
    # An anonymous request: no signature at all.
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{server.endpoint}/{BUCKET}/secret.txt", timeout=10)
    assert anonymous.value.code == 403
    assert b"AccessDenied" in anonymous.value.read()


def test_stop_leaves_nothing_running(tmp_path: Path) -> None:
    require_binary()
    s3 = S3Server()
    s3.start(tmp_path)
    pid = int(s3.pid_file.read_text())
    assert s3.log_file.is_file()
    s3.stop()
    s3.stop()  # twice is fine
    assert not Path(f"/proc/{pid}").exists()
    assert not s3.pid_file.exists()
