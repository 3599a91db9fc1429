"""The S3 server of the harness (``harness.s3``) against the real boto3 client.

The server (``versitygw``) is built by ``hack/build-tools.sh s3``; without it these tests fail
rather than skip, so a missing tool never passes for a green run. boto3 runs with its defaults
(CRC32 checksums on uploads included) except for path-style addressing, which is how the
trainer and the model server reach ``http://127.0.0.1:PORT/bucket/key``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore import UNSIGNED  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

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


def client(s3: S3Server, access_key: str | None = None, secret_key: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=access_key or s3.access_key,
        aws_secret_access_key=secret_key or s3.secret_key,
        region_name=s3.region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_upload_list_download_delete(server: S3Server, tmp_path: Path) -> None:
    server.create_bucket(BUCKET)
    server.create_bucket(BUCKET)  # again: already owned, not an error
    assert (server.data_dir / BUCKET).is_dir()
    s3 = client(server)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]

    model = os.urandom(3000)
    put = s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}model.onnx", Body=model)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    # A file large enough for boto3's multipart upload (three parts), as a trainer sends one.
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    five_mib = 5 * 1024 * 1024
    parts = TransferConfig(multipart_threshold=five_mib, multipart_chunksize=five_mib)
    s3.upload_file(str(big), BUCKET, f"{PREFIX}weights.bin", Config=parts)
    s3.put_object(Bucket=BUCKET, Key="models/other/1/model.onnx", Body=b"other")

    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {
        f"{PREFIX}model.onnx": len(model),
        f"{PREFIX}weights.bin": big.stat().st_size,
    }
    top = s3.list_objects_v2(Bucket=BUCKET, Prefix="models/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["models/iris/", "models/other/"]

    assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}model.onnx")["Body"].read() == model
    got = io.BytesIO()
    s3.download_fileobj(BUCKET, f"{PREFIX}weights.bin", got)
    assert got.getvalue() == big.read_bytes()

    deleted = s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in listed]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(o["Key"] for o in listed)
    assert not deleted.get("Errors")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["KeyCount"] == 0
    s3.delete_object(Bucket=BUCKET, Key="models/other/1/model.onnx")
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}model.onnx")
    assert error_code(missing) == "NoSuchKey"


def test_wrong_credentials_are_refused(server: S3Server) -> None:
    server.create_bucket(BUCKET)
    client(server).put_object(Bucket=BUCKET, Key="secret.txt", Body=b"x")

    with pytest.raises(ClientError) as bad_secret:
        client(server, secret_key="0" * 40).get_object(Bucket=BUCKET, Key="secret.txt")
    assert error_code(bad_secret) == "SignatureDoesNotMatch"

    with pytest.raises(ClientError) as unknown_key:
        client(server, access_key="AKIAUNKNOWNUNKNOWN00").list_objects_v2(Bucket=BUCKET)
    assert error_code(unknown_key) == "InvalidAccessKeyId"

    anonymous = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
    )
    with pytest.raises(ClientError) as unsigned:
        anonymous.get_object(Bucket=BUCKET, Key="secret.txt")
    assert error_code(unsigned) == "AccessDenied"


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
