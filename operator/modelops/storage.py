"""Object storage for datasets and artifacts: ``s3://bucket/key`` on any S3-compatible server.

The pods that move data use this, never the operator: the trainer and the SDK (download a
dataset, upload an artifact directory), the serving pod's init step (download and verify an
artifact before the server starts) and the retire Job (mark, and on request delete, a retired
version's objects). The client is obstore (the Rust ``object_store`` crate); the settings come
from the environment the operator puts in those pods:

- ``MODELOPS_S3_ENDPOINT`` (unset: AWS), ``MODELOPS_S3_REGION`` (default ``us-east-1``),
  ``MODELOPS_S3_PATH_STYLE`` (``true``: ``endpoint/bucket/key``, what most self-hosted servers
  want);
- ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, from the Secret the user names
  (``spec.storage.s3.credentialsSecret``) through ``secretKeyRef``: the operator never reads it.

Every failure is a :class:`StorageError` with one line a person can act on: which object, and
what the server said (``InvalidAccessKeyId``, ``SignatureDoesNotMatch``, ``NoSuchBucket``, …).
An artifact is uploaded with ``manifest.json`` last and downloaded with every file checked
against the manifest and the manifest against the digest, so a half-written or tampered
artifact is never served.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import obstore
from obstore.store import S3Store

from modelops.api import artifact as contract

RETIRED_MARKER = contract.RETIRED_MARKER
"""The object (file, in a directory) that makes the server refuse a retired artifact."""

_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")
_CODE = re.compile(r"<Code>([^<]+)</Code>")


class StorageError(Exception):
    """An object could not be read or written; the message says which and why."""


def is_s3(uri: str) -> bool:
    """Whether ``uri`` is an ``s3://`` URI."""
    return uri.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")`` (key without slashes at the ends)."""
    match = _S3_URI.match(uri)
    if match is None:
        raise StorageError(f"{uri} is not an s3://bucket/key URI")
    return match.group(1), (match.group(2) or "").strip("/")


@dataclass(frozen=True)
class S3Settings:
    """How to reach the S3 server: endpoint, region, addressing, credentials."""

    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        """The settings the operator put in this pod's environment."""
        env = os.environ if environ is None else environ
        return cls(
            endpoint=env.get("MODELOPS_S3_ENDPOINT") or None,
            region=env.get("MODELOPS_S3_REGION") or "us-east-1",
            path_style=env.get("MODELOPS_S3_PATH_STYLE", "").lower() == "true",
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        )

    def store(self, bucket: str) -> S3Store:
        """An obstore client for ``bucket``, one per settings and bucket (an artifact's files
        share its connections); a few quick retries, so a refusal is seen at once."""
        return _store(self, bucket)


@functools.cache
def _store(settings: S3Settings, bucket: str) -> S3Store:
    config: dict[str, object] = {"region": settings.region}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    if settings.access_key and settings.secret_key:
        config["access_key_id"] = settings.access_key
        config["secret_access_key"] = settings.secret_key
    else:
        config["skip_signature"] = True
    return S3Store(
        bucket,
        virtual_hosted_style_request=not settings.path_style,
        client_options={
            "allow_http": bool(settings.endpoint and settings.endpoint.startswith("http:"))
        },
        retry_config={
            "max_retries": 3,
            "backoff": {
                "init_backoff": timedelta(milliseconds=200),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
            "retry_timeout": timedelta(seconds=30),
        },
        **config,  # type: ignore[arg-type]
    )


def _explain(uri: str, action: str, error: Exception, settings: S3Settings) -> StorageError:
    text = str(error)
    code = _CODE.search(text)
    where = f" at {settings.endpoint}" if settings.endpoint else ""
    if code is not None:
        reason = code.group(1)
        if reason in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            return StorageError(
                f"the S3 server{where} refused the credentials to {action} {uri} ({reason}): "
                "check the Secret named in spec.storage.s3.credentialsSecret"
            )
        return StorageError(f"cannot {action} {uri}{where}: {reason}")
    if isinstance(error, FileNotFoundError):
        return StorageError(f"cannot {action} {uri}{where}: no such object")
    first = text.splitlines()[0] if text else type(error).__name__
    return StorageError(f"cannot {action} {uri}{where}: {first}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def get_bytes(uri: str, settings: S3Settings) -> bytes:
    """The content of one object."""
    bucket, key = parse_s3_uri(uri)
    try:
        return bytes(obstore.get(settings.store(bucket), key).bytes())
    except Exception as error:  # obstore raises its own and builtin exceptions
        raise _explain(uri, "read", error, settings) from None


def put_bytes(uri: str, data: bytes, settings: S3Settings) -> None:
    """Write one object (whole: S3 never shows half of it)."""
    bucket, key = parse_s3_uri(uri)
    try:
        obstore.put(settings.store(bucket), key, data)
    except Exception as error:
        raise _explain(uri, "write", error, settings) from None


def exists(uri: str, settings: S3Settings) -> bool:
    """Whether the object exists."""
    bucket, key = parse_s3_uri(uri)
    try:
        obstore.head(settings.store(bucket), key)
    except FileNotFoundError:
        return False
    except Exception as error:
        raise _explain(uri, "read", error, settings) from None
    return True


def download_file(uri: str, destination: Path, settings: S3Settings) -> None:
    """Copy one object to a local file (written whole, then renamed into place)."""
    data = get_bytes(uri, settings)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.write_bytes(data)
    partial.replace(destination)


def upload_artifact(directory: Path, uri: str, settings: S3Settings) -> None:
    """Upload an artifact directory: every file its manifest lists, then the manifest, so the
    prefix holds a complete artifact from the moment the manifest exists. A prefix that already
    holds a different manifest is refused, like a directory that does."""
    manifest_bytes = (directory / contract.MANIFEST_FILE).read_bytes()
    manifest = contract.Manifest.model_validate_json(manifest_bytes)
    manifest_uri = f"{uri.rstrip('/')}/{contract.MANIFEST_FILE}"
    if exists(manifest_uri, settings) and get_bytes(manifest_uri, settings) != manifest_bytes:
        raise StorageError(
            f"{uri} already holds a different artifact; use a new prefix per training run"
        )
    for name in sorted(manifest.files):
        put_bytes(f"{uri.rstrip('/')}/{name}", (directory / name).read_bytes(), settings)
    put_bytes(manifest_uri, manifest_bytes, settings)


def fetch_artifact(uri: str, digest: str, destination: Path, settings: S3Settings) -> list[str]:
    """Download the artifact at ``uri`` into ``destination`` and verify it against ``digest``:
    the manifest against the digest, every listed file against the manifest. A ``RETIRED``
    marker is copied too, so the server refuses the version. Returns the file names.
    """
    base = uri.rstrip("/")
    manifest_bytes = get_bytes(f"{base}/{contract.MANIFEST_FILE}", settings)
    try:
        manifest = contract.verify_manifest(manifest_bytes, digest)
    except contract.ArtifactIntegrityError as error:
        raise StorageError(f"{base}: {error}") from None
    destination.mkdir(parents=True, exist_ok=True)
    names = sorted(manifest.files)
    for name in names:
        data = get_bytes(f"{base}/{name}", settings)
        actual = contract.sha256_digest(data)
        if actual != manifest.files[name]:
            raise StorageError(
                f"{base}/{name} has digest {actual}, {contract.MANIFEST_FILE} lists "
                f"{manifest.files[name]}: the object was altered"
            )
        (destination / name).write_bytes(data)
    if exists(f"{base}/{RETIRED_MARKER}", settings):
        (destination / RETIRED_MARKER).write_bytes(get_bytes(f"{base}/{RETIRED_MARKER}", settings))
        names.append(RETIRED_MARKER)
    (destination / contract.MANIFEST_FILE).write_bytes(manifest_bytes)
    return [*names, contract.MANIFEST_FILE]


def retire_artifact(
    uri: str, note: str, *, delete_artifacts: bool, settings: S3Settings
) -> list[str]:
    """Write the ``RETIRED`` marker object, then delete the other objects under the prefix if
    asked (the marker stays as the record); returns the deleted keys' names."""
    bucket, prefix = parse_s3_uri(uri)
    marker = f"{uri.rstrip('/')}/{RETIRED_MARKER}"
    if not exists(marker, settings):
        put_bytes(marker, note.encode(), settings)
    if not delete_artifacts:
        return []
    store = settings.store(bucket)
    try:
        keys = [
            meta["path"]
            for batch in obstore.list(store, prefix=_join(prefix, ""))
            for meta in batch
            if meta["path"] != _join(prefix, RETIRED_MARKER)
        ]
        if keys:
            obstore.delete(store, keys)
    except Exception as error:
        raise _explain(uri, "delete the objects of", error, settings) from None
    return sorted(key.rsplit("/", 1)[-1] for key in keys)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modelops.storage fetch --uri s3://… --digest sha256:… --dest DIR``: the
    serving pod's init step. Exit 1 with one line on stderr (and in the termination message)
    when the artifact cannot be fetched or does not verify."""
    parser = argparse.ArgumentParser(prog="python -m modelops.storage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download and verify an artifact")
    fetch.add_argument("--uri", required=True)
    fetch.add_argument("--digest", required=True)
    fetch.add_argument("--dest", type=Path, required=True)
    retire = sub.add_parser("retire", help="mark (and on request delete) a retired artifact")
    retire.add_argument("--uri", required=True)
    retire.add_argument("--version", required=True)
    retire.add_argument("--reason", required=True)
    retire.add_argument("--delete-artifacts", action="store_true")
    for command in (fetch, retire):
        command.add_argument(
            "--termination-log",
            type=Path,
            default=Path("/dev/termination-log"),
            help="where the reason of a failure goes (the kubelet shows it in the pod's status)",
        )
    args = parser.parse_args(argv)
    settings = S3Settings.from_env()
    try:
        if args.command == "fetch":
            names = fetch_artifact(args.uri, args.digest, args.dest, settings)
            print(f"Fetched and verified {args.uri} ({args.digest}): {', '.join(names)}")
        else:
            when = datetime.now(UTC).isoformat()
            note = f"version {args.version} retired at {when}: {args.reason}\n"
            deleted = retire_artifact(
                args.uri, note, delete_artifacts=args.delete_artifacts, settings=settings
            )
            print(
                f"Marked {args.uri} as retired (version {args.version})"
                + (f"; deleted {', '.join(deleted)}" if deleted else "")
            )
    except StorageError as error:
        print(str(error), file=sys.stderr)
        with contextlib.suppress(OSError):  # outside a pod there is no termination log
            args.termination_log.write_text(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
