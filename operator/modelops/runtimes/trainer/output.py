"""Writing the artifact directory and the termination log.

Each file is written to a temporary name in its destination directory, flushed to disk and
renamed into place, so a reader sees either the old content or the new one, never half of a
file. `manifest.json` is renamed last: it is what makes a directory a complete artifact,
and the digest recorded elsewhere is its hash, so a crash part-way leaves a directory whose
files do not verify against any digest that was ever published.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from modelops.api.artifact import MANIFEST_FILE, sha256_digest
from modelops.runtimes.trainer.errors import TrainerError


def write_artifact(directory: Path, files: Mapping[str, bytes], manifest: bytes) -> None:
    """Write `files` (name → content) and then `manifest` into `directory`.

    Creates the directory if missing. A directory that already holds the same artifact
    (an identical manifest, e.g. a retried pod with the same seed) is rewritten in place,
    which repairs any damaged file. A directory that holds a different artifact is refused
    with `TrainerError`: a registered ModelVersion may point at it, and overwriting it would
    break its digest.
    """
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST_FILE
    if manifest_path.exists():
        existing = manifest_path.read_bytes()
        if existing != manifest:
            raise TrainerError(
                f"{directory} already holds a different artifact ({sha256_digest(existing)}); "
                "use a new output directory per training run"
            )
    for name, content in files.items():
        write_atomically(directory / name, content)
    write_atomically(manifest_path, manifest)


def write_atomically(path: Path, content: bytes) -> None:
    """Replace `path` with `content` in one rename, after the bytes have reached the disk."""
    # A fixed temporary name means a crashed attempt's leftover is overwritten by the next
    # attempt rather than accumulating.
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_termination_log(path: Path, message: bytes) -> None:
    """Write the termination message in place.

    Not via a rename: in a pod the path is a file the kubelet bind-mounts into the container,
    which cannot be replaced, only written.
    """
    with path.open("wb") as stream:
        stream.write(message)
