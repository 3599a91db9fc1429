"""``python -m modelops.runtimes.server.retire``: mark a retired version's artifact directory.

The operator runs this in a one-off Job when retention retires a ModelVersion. It writes the
``RETIRED`` marker that makes the server refuse the directory for good (see docs/server.md),
and — only with ``--delete-artifacts``, which the Model's ``retention.deleteArtifacts: true``
asks for — deletes the artifact files. The marker stays in both cases, as the record of what
happened. Running it twice is harmless.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from modelops.runtimes.server.loader import RETIRED_MARKER


def retire(
    directory: Path, version: str, reason: str, *, delete_artifacts: bool, now: datetime
) -> list[str]:
    """Write the marker, then delete the other files if asked; return the deleted names."""
    if not directory.is_dir():
        raise FileNotFoundError(f"artifact directory {directory} does not exist")
    marker = directory / RETIRED_MARKER
    if not marker.exists():
        text = f"version {version} retired at {now.isoformat()}: {reason}\n"
        tmp = directory / f".{RETIRED_MARKER}.tmp"
        tmp.write_text(text)
        tmp.replace(marker)  # the marker appears whole, before any file goes
    deleted = []
    if delete_artifacts:
        for entry in sorted(directory.iterdir()):
            if entry.name != RETIRED_MARKER and entry.is_file():
                entry.unlink()
                deleted.append(entry.name)
        with marker.open("a") as f:
            if deleted:
                f.write(f"artifact files deleted at {now.isoformat()}: {', '.join(deleted)}\n")
    return deleted


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, retire, report; exit 1 when the directory is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m modelops.runtimes.server.retire", description=__doc__
    )
    parser.add_argument("--dir", type=Path, required=True, help="the artifact directory")
    parser.add_argument("--version", required=True, help="the retired version")
    parser.add_argument("--reason", required=True, help="why it was retired")
    parser.add_argument(
        "--delete-artifacts",
        action="store_true",
        help="also delete the artifact files (data loss: only on request)",
    )
    args = parser.parse_args(argv)
    try:
        deleted = retire(
            args.dir,
            args.version,
            args.reason,
            delete_artifacts=args.delete_artifacts,
            now=datetime.now(UTC),
        )
    except FileNotFoundError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(
        f"Marked {args.dir} as retired (version {args.version})"
        + (f"; deleted {', '.join(deleted)}" if deleted else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
