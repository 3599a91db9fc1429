"""``python -m modelops.datasets NAME DEST``: copy a bundled dataset file to DEST.

Used by the samples' dataset-loading Job to put the bundled data on a PersistentVolumeClaim,
the way a real pipeline would land its training data before a TrainingRun reads it.
"""

import argparse
import shutil
import sys
from pathlib import Path

from modelops.datasets import path


def main() -> int:
    """Copy the file; print where it went."""
    parser = argparse.ArgumentParser(prog="python -m modelops.datasets", description=__doc__)
    parser.add_argument("name", help="bundled file, e.g. iris.csv")
    parser.add_argument("dest", type=Path, help="destination file")
    args = parser.parse_args()
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.dest.with_name(args.dest.name + ".tmp")
    shutil.copyfile(path(args.name), tmp)
    tmp.replace(args.dest)  # readers never see a half-written file
    print(f"Copied {args.name} to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
