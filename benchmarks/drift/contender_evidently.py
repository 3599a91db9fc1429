"""Contender "Evidently": ``Report([DataDriftPreset(...)]).run(current, reference)`` (own venv).

Runs in the venv made from ``requirements-evidently.txt``, never in the project's. The input is
the two arrays as pandas DataFrames (built before the clock starts, without copying). The
documented API of Evidently 0.7 (``evidently.Report``, ``evidently.presets.DataDriftPreset``)
is called once; the Report is made with ``include_tests=True``, the documented way to get an
explicit pass/fail per column, which is what the verdicts are read from (a failed "Value
Drift" test is a drifted column).

Variants:

- ``defaults``: ``DataDriftPreset()``, every option at its default;
- ``matched``: ``DataDriftPreset(per_column_method=…, per_column_threshold=…)`` set per column
  from ``--methods`` (what our ``auto`` chose, with our thresholds; ``run.py`` writes it).
"""

import argparse
import json
from importlib.metadata import version
from typing import Any, NamedTuple

import pandas as pd  # type: ignore[import-untyped]
from dataset import load
from evidently import Report  # type: ignore[import-not-found]
from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
from measure import Breakdown, measured_main

VARIANTS = ("defaults", "matched")


class Inputs(NamedTuple):
    """The two windows as DataFrames, and the preset options of the variant."""

    reference: Any
    current: Any
    names: tuple[str, ...]
    options: dict[str, Any]


def preset_options(args: argparse.Namespace) -> dict[str, Any]:
    """The DataDriftPreset keyword arguments of the variant asked for."""
    if args.variant == "defaults":
        return {}
    if args.variant == "matched":
        if args.methods is None:
            raise SystemExit("The matched variant needs --methods")
        methods = json.loads(args.methods.read_text())
        return {
            "per_column_method": {name: method for name, (method, _) in methods.items()},
            "per_column_threshold": {name: threshold for name, (_, threshold) in methods.items()},
        }
    raise SystemExit(f"Unknown variant {args.variant!r}; expected one of {VARIANTS}")


def report(
    reference: Any, current: Any, names: tuple[str, ...], options: dict[str, Any]
) -> dict[str, Any]:
    """Run the preset and return its verdicts, scores and methods, in ``names`` order."""
    snapshot = Report([DataDriftPreset(**options)], include_tests=True).run(current, reference)
    result = snapshot.dict()
    verdicts: dict[str, bool] = {}
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            status = getattr(test["status"], "value", test["status"])
            verdicts[params["column"]] = status == "FAIL"
    scores: dict[str, float] = {}
    methods: dict[str, str] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            scores[config["column"]] = float(metric["value"])
            methods[config["column"]] = str(config["method"])
    missing = set(names) - set(verdicts)
    if missing:
        raise RuntimeError(f"Evidently returned no verdict for {len(missing)} columns")
    return {
        "verdicts": [verdicts[name] for name in names],
        "scores": [scores[name] for name in names],
        "methods": [methods[name] for name in names],
    }


def prepare(args: argparse.Namespace) -> Inputs:
    """Load the arrays as DataFrames and run the variant once on a small slice."""
    reference, current, meta = load(args.data)
    names = list(meta.names)
    reference_frame = pd.DataFrame(reference, columns=names, copy=False)
    current_frame = pd.DataFrame(current, columns=names, copy=False)
    options = preset_options(args)
    rows, warm = args.warmup_rows, names[:2]
    warm_options = {key: {name: value[name] for name in warm} for key, value in options.items()}
    report(
        reference_frame[warm].head(rows), current_frame[warm].head(rows), tuple(warm), warm_options
    )
    return Inputs(reference_frame, current_frame, meta.names, options)


def run(inputs: Inputs, args: argparse.Namespace, breakdown: Breakdown) -> dict[str, Any]:
    """The measured work: one Report run, verdicts collected."""
    with breakdown.phase("Report.run"):
        column = report(inputs.reference, inputs.current, inputs.names, inputs.options)
    return {"columns": {f"evidently-{args.variant}": column}}


def versions() -> dict[str, str]:
    """The packages doing the work."""
    names = ("evidently", "pandas", "numpy", "scipy", "plotly")
    return {name: version(name) for name in names}


if __name__ == "__main__":
    measured_main(__doc__ or "", prepare, run, versions)
