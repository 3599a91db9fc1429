"""The first program of every container: set up its view of the filesystem, then exec it.

The runner starts ``python -I -S nsexec.py SPEC ERRFD`` in a new session; this script

1. asks the kernel to SIGKILL it when the runner dies (``PR_SET_PDEATHSIG``; it survives the
   final exec, so the container process itself dies with the runner);
2. with ``isolate``, enters a private mount and UTS namespace (what ``unshare --mount
   --uts --propagation private`` does), sets the pod's hostname, and bind-mounts every volume at
   its ``mountPath``;
3. with ``isolate``, makes the runner's own runtime (``keep``: the virtual environment and the
   project source that ``python`` in a pod runs) visible again at its host path, read-only,
   where a volume covers it: a clone under ``/tmp`` would otherwise vanish behind a pod's
   ``/tmp`` emptyDir;
4. changes to the working directory and execs the container command with the container's
   environment (``PATH`` lookup uses the container's ``PATH``).

The process ID never changes, so the runner's child *is* the container.

Mount points that do not exist are never created on the host. The deepest existing ancestor
is shadowed inside the namespace by a tmpfs that mirrors its entries (directories and files
bind-mounted back, symlinks recreated), and the missing directories are made in that tmpfs.
When the ancestor is ``/`` itself, a tmpfs under the pod's state directory mirrors the root and
the container is chrooted into it. So ``/var/run/secrets/kubernetes.io/serviceaccount`` and
``/dev/termination-log`` appear for the container alone.

If anything fails before exec, a JSON ``{"reason", "message"}`` goes to ``ERRFD`` (close-on-exec,
so the runner reads EOF on success) and the exit status is 127. This file is run as a script by
an isolated interpreter and must import nothing outside the standard library.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """Setting up the container failed; ``reason`` is the kubelet-style waiting reason."""

    def __init__(self, message: str, reason: str = "StartError") -> None:
        super().__init__(message)
        self.reason = reason


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _bind(source: str, target: str, read_only: bool = False) -> None:
    _mount(source, target, None, _MS_BIND | _MS_REC, None)
    if read_only:
        _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)


class Namespace:
    """The container's private mount namespace, built up one mount at a time."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.root_switched = False
        self.shadowed: set[str] = set()
        self.volumes: list[str] = []

    def enter(self, hostname: str) -> None:
        _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWUTS), "unshare")
        # Nothing mounted from here on may propagate back to the host.
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
        if hostname:
            name = hostname.encode()
            _check(_libc.sethostname(name, len(name)), "sethostname")

    def _mirror(self, source: str, target: str, st: os.stat_result) -> None:
        """Recreate one directory entry in a tmpfs: symlinks copied, the rest bind-mounted."""
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), target)
            return
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(target)
        else:
            with open(target, "w"):
                pass
        try:
            _bind(source, target)
        except SetupError:
            # An entry that refuses a bind mount (rare special files) stays an empty stand-in.
            return

    def _shadow(self, directory: str) -> None:
        """Cover ``directory`` with a tmpfs that shows the same entries, so it can grow."""
        if directory in self.shadowed:
            return
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            _mount("tmpfs", directory, "tmpfs", 0, f"mode={mode:o}")
            for entry in os.listdir(fd):
                st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                # The fd still reaches the covered directory: bind its entries back on top.
                self._mirror(f"/proc/self/fd/{fd}/{entry}", os.path.join(directory, entry), st)
        finally:
            os.close(fd)
        self.shadowed.add(directory)

    def switch_root(self) -> None:
        """Chroot into a tmpfs that mirrors ``/``, so that new top-level directories can exist.

        Done before any volume is mounted: the scratch directory is a host path that a volume
        mounted earlier (say at ``/tmp``) could hide.
        """
        if self.root_switched:
            return
        os.makedirs(self.scratch, exist_ok=True)
        _mount("tmpfs", self.scratch, "tmpfs", 0, "mode=755")
        for entry in os.listdir("/"):
            st = os.lstat("/" + entry)
            self._mirror("/" + entry, os.path.join(self.scratch, entry), st)
        os.chdir(self.scratch)
        os.chroot(".")
        os.chdir("/")
        # The recursive binds copied the scratch tmpfs into itself; drop that copy.
        _libc.umount2(self.scratch.encode(), _MNT_DETACH)
        self.root_switched = True
        self.shadowed.add("/")

    def ensure(self, path: str, directory: bool) -> str:
        """Make ``path`` exist in the container's view (never on the host); return it resolved."""
        path = os.path.realpath(path)
        if os.path.lexists(path):
            if directory != os.path.isdir(path):
                kind = "a directory" if directory else "a file"
                raise SetupError(f"cannot mount {kind} on {path}: it exists with another type")
            return path
        ancestor = os.path.dirname(path)
        while not os.path.isdir(ancestor):
            if os.path.lexists(ancestor):
                raise SetupError(f"cannot create {path}: {ancestor} is not a directory")
            ancestor = os.path.dirname(ancestor)
        inside_volume = any(ancestor == v or ancestor.startswith(v + "/") for v in self.volumes)
        if inside_volume:
            pass  # like runc: a mount point inside a volume is created in the volume
        elif ancestor == "/":
            self.switch_root()
        else:
            self._shadow(ancestor)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if directory:
            os.mkdir(path)
        else:
            with open(path, "w"):
                pass
        return path

    def mount(self, source: int, target: str, read_only: bool) -> None:
        """Bind the host file or directory open as ``source`` (an fd) at ``target``."""
        directory = stat.S_ISDIR(os.fstat(source).st_mode)
        resolved = self.ensure(target, directory)
        _bind(f"/proc/self/fd/{source}", resolved, read_only)
        if directory:
            self.volumes.append(resolved)


def _needs_new_root(path: str) -> bool:
    """Whether ``path`` lacks its top-level directory (only a new root can provide one)."""
    parts = [p for p in os.path.realpath(path).split("/") if p]
    return bool(parts) and not os.path.lexists("/" + parts[0])


def _open_sources(mounts: list[dict[str, Any]]) -> list[int]:
    """Open every mount source while the view is still the host's (no mounts made yet).

    Paths would be resolved in the container's view, where an earlier mount may cover them
    (a volume at ``/tmp`` hides a claim directory under ``/tmp``); an fd keeps the host's.
    """
    fds = []
    for mount in mounts:
        try:
            fds.append(os.open(mount["source"], os.O_PATH | os.O_CLOEXEC))
        except FileNotFoundError:
            raise SetupError(f"mount source {mount['source']} does not exist") from None
    return fds


def _covered(path: str, targets: list[str]) -> bool:
    """Whether a mount at one of ``targets`` hides ``path`` (the path itself or an ancestor)."""
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets)


def _depth(mount: dict[str, Any]) -> int:
    return len([part for part in os.path.normpath(mount["target"]).split("/") if part])


def prepare(spec: dict[str, Any]) -> None:
    """Everything between fork and exec; raises ``SetupError``."""
    cwd = spec.get("cwd") or "/"
    if spec.get("isolate"):
        # Parents before children, so a volume inside another volume stays visible.
        mounts = sorted(spec.get("mounts", []), key=_depth)
        ns = Namespace(spec["scratch"])
        ns.enter(spec.get("hostname", ""))
        # After unshare (a bind source must belong to our namespace), before any mount.
        sources = _open_sources(mounts)
        targets = [os.path.realpath(m["target"]) for m in mounts]
        keep = [p for p in spec.get("keep", []) if _covered(p, targets) and os.path.isdir(p)]
        kept = _open_sources([{"source": p} for p in keep])
        if any(_needs_new_root(path) for path in [cwd, *(m["target"] for m in mounts)]):
            ns.switch_root()
        for mount, source in zip(mounts, sources, strict=True):
            ns.mount(source, mount["target"], bool(mount.get("readOnly")))
        for path, source in zip(keep, kept, strict=True):
            # Last, over the volume that hid it; its mount point is made in that volume.
            ns.mount(source, path, read_only=True)
        if not os.path.isdir(cwd):
            cwd = ns.ensure(cwd, directory=True)
    try:
        os.chdir(cwd)
    except OSError as e:
        raise SetupError(f"chdir to {cwd}: {e.strerror}") from None


def _exec(spec: dict[str, Any]) -> None:
    argv: list[str] = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except FileNotFoundError:
        where = (
            "no such file or directory" if "/" in argv[0] else "executable file not found in $PATH"
        )
        raise SetupError(f'exec: "{argv[0]}": {where}') from None
    except OSError as e:
        raise SetupError(f'exec: "{argv[0]}": {e.strerror}') from None


def main() -> None:
    spec_path, err_fd = sys.argv[1], int(sys.argv[2])
    os.set_inheritable(err_fd, False)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        with open(spec_path) as f:
            spec = json.load(f)
        if os.getppid() != spec["parent"]:
            # The runner died before the death signal was armed: nobody would ever reap us.
            os._exit(1)
        prepare(spec)
        _exec(spec)
    except SetupError as e:
        report = {"reason": e.reason, "message": str(e)}
    except Exception as e:  # anything else is still the container's failure, not ours
        report = {"reason": "StartError", "message": f"{type(e).__name__}: {e}"}
    os.write(err_fd, json.dumps(report).encode())
    os._exit(127)


if __name__ == "__main__":
    main()
