"""Drift fidelity: our verdicts vs Evidently's on real and synthetic data with known shifts.

Usage (from the repository root, project venv)::

    .venv/bin/python benchmarks/drift/fidelity.py            # 8 seeds per shift, 16 per null
    .venv/bin/python benchmarks/drift/fidelity.py --quick    # 3 and 8

Every case of ``cases.py`` (tables x shift kinds x levels x seeds) goes through our production
path — the trainer's ``numeric_reference`` for each reference column, the server's counters
for the current window (``window_counts``, the batch equivalent the unit tests check against
the server's own), ``parse_reference`` and ``evaluate`` — once per configuration of
:data:`CONFIGS`, and through Evidently's ``DataDriftPreset()`` at its defaults in the Evidently
venv (``fidelity_evidently.py``). ``before`` is the representation this benchmark replaced:
decile edges from the minimum to the maximum, bucket midpoints, no missing counter (missing
values dropped), ``auto`` on non-empty buckets.

The windows of the real tables are small (75 rows for iris), so ``min_samples`` is 1 here;
the operator's default of 100 would call the smallest tables InsufficientData.

Writes ``fidelity.json`` (per case, per configuration: verdicts) and ``fidelity.md``
(``fidelity_report.py``) next to this file unless ``--out-dir`` says otherwise.
"""

import argparse
import datetime
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cases
import fidelity_report
import numpy as np

from modelops.api import artifact as contract
from modelops.core.drift import (
    DriftConfig,
    FeatureReference,
    bin_counts,
    evaluate,
    parse_reference,
    window_counts,
)
from modelops.runtimes.trainer.reference import numeric_reference

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "modelops" / "bench"
EVIDENTLY_PYTHON = CACHE / "evidently-venv" / "bin" / "python"

Window = dict[str, np.ndarray]
Builder = Callable[[cases.Case], tuple[list[FeatureReference], Window]]


def current_representation(bins: int) -> Builder:
    """The production path of this revision with ``bins`` quantile bins."""

    def build(case: cases.Case) -> tuple[list[FeatureReference], Window]:
        stats = contract.ReferenceStats(
            rows=case.reference.shape[0],
            features=[
                numeric_reference(name, case.reference[:, j], bins)
                for j, name in enumerate(case.names)
            ],
        )
        features = list(parse_reference(stats.model_dump(mode="json", by_alias=True)))
        return features, window_counts(case.current, features)

    return build


def before_representation(case: cases.Case) -> tuple[list[FeatureReference], Window]:
    """Deciles from the minimum to the maximum, counts only, missing values dropped."""
    features, edges = [], []
    for j, name in enumerate(case.names):
        present = case.reference[:, j][~np.isnan(case.reference[:, j])]
        column_edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, 11)))
        (counts,) = bin_counts(present.reshape(-1, 1), [column_edges])
        features.append(FeatureReference.numeric(name, column_edges, counts))
        edges.append(column_edges)
    window = dict(zip(case.names, bin_counts(case.current, edges), strict=True))
    return features, window


REPRESENTATIONS: dict[str, Builder] = {
    "before": before_representation,
    "bins10": current_representation(10),
    "bins20": current_representation(20),
    "bins30": current_representation(30),
}
CORRECTIONS = ("none", "bonferroni", "fdr")
CONFIGS: dict[str, tuple[str, DriftConfig]] = {
    f"{representation}-{correction}": (
        representation,
        DriftConfig(correction=correction, min_samples=1),  # type: ignore[arg-type]
    )
    for representation in REPRESENTATIONS
    for correction in CORRECTIONS
}
"""Configuration name → (representation, evaluation config)."""


def ours(all_cases: list[cases.Case]) -> dict[str, dict[str, Any]]:
    """Per case id, per configuration: per-column verdicts and methods."""
    results: dict[str, dict[str, Any]] = {case.id: {} for case in all_cases}
    for representation, build in REPRESENTATIONS.items():
        configs = {n: c for n, (r, c) in CONFIGS.items() if r == representation}
        for case in all_cases:
            features, window = build(case)
            for name, config in configs.items():
                evaluation = evaluate(features, window, config)
                results[case.id][name] = {
                    "verdicts": [f.drifted for f in evaluation.features],
                    "methods": [f.method for f in evaluation.features],
                }
    return results


def evidently(
    all_cases: list[cases.Case], python: Path, workdir: Path, cache: Path
) -> tuple[dict[str, Any], str]:
    """Evidently's verdicts per case id, and its version; empty when its venv is missing.

    Verdicts are cached per Evidently version and case content (``cache``): they depend on
    neither our code nor the other cases, and Evidently takes seconds per case.
    """
    if not python.exists():
        return {}, f"skipped: no Evidently venv at {python} (make bench-drift builds it)"
    version = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('evidently'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cache_file = cache / f"fidelity-evidently-{version}.json"
    cached: dict[str, Any] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    keys = {case.id: _content_key(case) for case in all_cases}
    todo = [case for case in all_cases if keys[case.id] not in cached]
    if todo:
        index = cases.write(todo, workdir / "cases")
        out = workdir / "evidently.json"
        subprocess.run(
            [str(python), str(HERE / "fidelity_evidently.py"), str(index), str(out)], check=True
        )
        for case_id, result in json.loads(out.read_text()).items():
            cached[keys[case_id]] = result
        cache.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cached))
    return {case.id: cached[keys[case.id]] for case in all_cases}, version


def _content_key(case: cases.Case) -> str:
    digest = hashlib.sha256()
    for array in (case.reference, case.current):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(case.names).encode())
    return digest.hexdigest()


def _bits(verdicts: list[bool]) -> str:
    return "".join("1" if v else "0" for v in verdicts)


def case_record(
    case: cases.Case, ours: dict[str, Any], evidently: dict[str, Any] | None
) -> dict[str, Any]:
    """One case of ``fidelity.json``: per-column verdicts as strings of 0/1 (compact)."""
    if evidently is not None and "verdicts" in evidently:
        evidently = {"verdicts": _bits(evidently["verdicts"])}
    return {
        "id": case.id,
        "table": case.table,
        "kind": case.kind,
        "level": case.level,
        "drift": case.drift,
        "shifted": None if case.shifted is None else _bits(list(case.shifted)),
        "ours": {config: _bits(result["verdicts"]) for config, result in ours.items()},
        "evidently": evidently,
    }


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 seeds per shift, 8 per null")
    parser.add_argument("--seeds", type=int, help="seeds per shifted kind and level")
    parser.add_argument("--null-seeds", type=int, help="seeds per null kind")
    parser.add_argument("--synthetic-rows", type=int, default=cases.SYNTHETIC_ROWS)
    parser.add_argument("--evidently-python", type=Path, default=EVIDENTLY_PYTHON)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    args.seeds = args.seeds or (3 if args.quick else 8)
    args.null_seeds = args.null_seeds or (8 if args.quick else 16)
    return args


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    tables = cases.tables(args.evidently_python, CACHE, synthetic_rows=args.synthetic_rows)
    all_cases = list(cases.all_cases(tables, args.seeds, args.null_seeds))
    print(f"{len(all_cases)} cases over {len(tables)} tables", file=sys.stderr)
    ours_started = time.monotonic()
    our_results = ours(all_cases)
    ours_s = time.monotonic() - ours_started
    with tempfile.TemporaryDirectory(prefix="drift-fidelity-") as tmp:
        evidently_started = time.monotonic()
        evidently_results, evidently_version = evidently(
            all_cases, args.evidently_python, Path(tmp), CACHE
        )
        evidently_s = time.monotonic() - evidently_started
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/drift/fidelity.py", *sys.argv[1:]]),
        "evidently": evidently_version,
        "seconds": {"total": time.monotonic() - started, "ours": ours_s, "evidently": evidently_s},
        "tables": {t.name: list(t.values.shape) for t in tables},
        "configs": {name: rep for name, (rep, _) in CONFIGS.items()},
        "cases": [
            case_record(case, our_results[case.id], evidently_results.get(case.id))
            for case in all_cases
        ],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "fidelity.json").write_text(json.dumps(document))
    (args.out_dir / "fidelity.md").write_text(fidelity_report.render(document))
    print(f"Wrote {args.out_dir / 'fidelity.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
