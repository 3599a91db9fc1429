"""Build the krew archive (kubectl-modelops-<version>.tar.gz) byte for byte reproducibly, so
the sha256 in modelops.yaml can be checked against a fresh build.

    python plugins/krew/build_archive.py OUT_DIR   # prints the archive's path and sha256
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).parent
VERSION = "v0.1.0"
"""The plugin version: keep equal to spec.version in modelops.yaml."""


def build(out_dir: Path) -> Path:
    """Write the archive into ``out_dir`` and return its path."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        launcher = (HERE / "kubectl-modelops").read_bytes()
        info = tarfile.TarInfo("kubectl-modelops")
        info.size, info.mode, info.mtime = len(launcher), 0o755, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(launcher))
    out = out_dir / f"kubectl-modelops-{VERSION}.tar.gz"
    with out.open("wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out


if __name__ == "__main__":
    archive = build(Path(sys.argv[1]))
    print(archive, hashlib.sha256(archive.read_bytes()).hexdigest())
