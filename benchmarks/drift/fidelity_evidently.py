"""Evidently's verdicts on the fidelity cases (runs in the Evidently venv, never the project's).

Reads the ``index.json`` that ``fidelity.py`` wrote, runs
``Report([DataDriftPreset()], include_tests=True).run(current, reference)`` on every case with
every option at its default, and writes per case the per-column verdicts (a failed Value Drift
test) and methods. The dataset-level verdict is derived by ``fidelity.py`` with the preset's
rule (at least half of the columns drifted), the same rule as ours.

Usage: ``python fidelity_evidently.py INDEX OUT``.
"""

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from contender_evidently import report


def main() -> None:
    index_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    index = json.loads(index_path.read_text())
    results: dict[str, Any] = {}
    # Evidently and scipy warn about constant columns and small samples; the verdicts stand.
    warnings.simplefilter("ignore")
    for entry in index:
        arrays = np.load(index_path.parent / entry["file"])
        names = entry["names"]
        reference = pd.DataFrame(arrays["reference"], columns=names)
        current = pd.DataFrame(arrays["current"], columns=names)
        try:
            column = report(reference, current, tuple(names), {})
            results[entry["id"]] = {"verdicts": column["verdicts"], "methods": column["methods"]}
        except Exception as error:
            results[entry["id"]] = {"error": f"{type(error).__name__}: {error}"}
    out_path.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
