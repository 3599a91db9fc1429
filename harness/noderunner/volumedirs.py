"""The host side of volumes: creating directories, writing rendered files, removing them."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.noderunner.volumes import (
    FileContent,
    UnsupportedVolumeError,
    VolumeNotReadyError,
    VolumePlan,
)

#: emptyDir and sub-path directories are world-writable, as the kubelet makes them: whatever
#: user a container runs as can use them.
SHARED_DIR_MODE = 0o777


def make_shared_dir(path: Path) -> None:
    """Create a directory (and parents) that any container user may write to."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(SHARED_DIR_MODE)


def prepare_host_path(source: Mapping[str, Any]) -> None:
    """Apply a ``hostPath`` volume's ``type``: create it (``...OrCreate``) or check it exists."""
    path = Path(source.get("path", ""))
    kind = source.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise VolumeNotReadyError(f"hostPath type check failed: {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise VolumeNotReadyError(f"hostPath type check failed: {path} is not a file")
    elif kind in ("Socket", "CharDevice", "BlockDevice") and not path.exists():
        raise VolumeNotReadyError(f"hostPath type check failed: {path} does not exist")
    elif kind not in (
        "",
        "DirectoryOrCreate",
        "FileOrCreate",
        "Directory",
        "File",
        "Socket",
        "CharDevice",
        "BlockDevice",
    ):
        raise UnsupportedVolumeError(f"hostPath type {kind!r} is not supported")


def write_files(directory: Path, files: Mapping[str, FileContent]) -> bool:
    """Make ``directory`` hold exactly ``files``; return True if anything changed.

    Each file is replaced atomically (write, then rename), so a reader never sees half a token.
    Files mounted individually with ``subPath`` keep their old content, as with the kubelet.
    """
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    for relative, content in files.items():
        target = directory / relative
        try:
            current = target.read_bytes()
            same_mode = stat.S_IMODE(target.stat().st_mode) == content.mode
        except OSError:
            current, same_mode = None, False
        if current == content.data and same_mode:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(content.data)
        temporary.chmod(content.mode)
        temporary.replace(target)
        changed = True
    wanted = {directory / relative for relative in files}
    for root, _, names in os.walk(directory, topdown=False):
        for name in names:
            path = Path(root) / name
            if path not in wanted:
                path.unlink()
                changed = True
        if Path(root) != directory and not any(Path(root).iterdir()):
            Path(root).rmdir()
    return changed


def prepare_source(plan: VolumePlan, source: Path) -> None:
    """Make sure a mount source exists: directory volumes and their sub-paths are created."""
    if source.exists():
        return
    if plan.rendered:
        raise VolumeNotReadyError(f'volume "{plan.name}" has no file or directory {source.name}')
    make_shared_dir(source)


def remove_pod_volumes(pod_dir: Path) -> None:
    """Delete the pod's emptyDir and rendered volumes (logs stay). Never follows symlinks."""
    for name in ("volumes", "rootfs"):
        shutil.rmtree(pod_dir / name, ignore_errors=True)
