"""Checks of the drift benchmark's own logic: data, the matched configuration, the summary.

Run with ``.venv/bin/python -m pytest benchmarks/drift``. Nothing here asserts a timing; the
end-to-end test runs ours and the scipy loop on a small slice in temporary directories and
never needs the Evidently venv.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cases
import dataset
import fidelity
import fidelity_report
import numpy as np
import pytest
import report
import run


def test_generation_is_deterministic_and_shifts_only_the_chosen_features() -> None:
    reference, current = dataset.generate(4000)
    again, _ = dataset.generate(4000)
    np.testing.assert_array_equal(reference, again)
    shift = current.mean(axis=0) - reference.mean(axis=0)
    std = reference.std(axis=0)
    moved = set(np.flatnonzero(np.abs(shift) > 0.3 * std).tolist())
    assert moved == set(dataset.shifted_features())


def test_ensure_reuses_a_complete_directory(tmp_path: Path) -> None:
    directory = dataset.ensure(tmp_path, 500)
    stamp = (directory / "reference.npy").stat().st_mtime_ns
    assert dataset.ensure(tmp_path, 500) == directory
    assert (directory / "reference.npy").stat().st_mtime_ns == stamp
    reference, current, meta = dataset.load(directory)
    assert reference.shape == current.shape == (500, dataset.FEATURES)
    assert sum(meta.truth) == dataset.SHIFTED


def test_matched_methods_turn_bonferroni_into_a_per_column_threshold() -> None:
    ours = {"methods": ["ks", "wasserstein", "ks", "js"], "thresholds": [0.05, 0.1, 0.05, 0.1]}
    matched = run.matched_methods(ours, ("a", "b", "c", "d"), "bonferroni")
    assert matched == {
        "a": ["ks", 0.025],
        "b": ["wasserstein", 0.1],
        "c": ["ks", 0.025],
        "d": ["jensenshannon", 0.1],
    }


def test_matched_methods_refuse_a_correction_evidently_cannot_express() -> None:
    ours = {"methods": ["ks"], "thresholds": [0.05]}
    with pytest.raises(ValueError, match="fdr"):
        run.matched_methods(ours, ("a",), "fdr")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # Three interleaved rounds below 1M (evidently-matched in the first only), one at 1M
        # without evidently-matched.
        ([], 10 + 10 + 3),
        (["--quick"], 4 + 4),
        (["--sizes", "500", "--reps", "2", "--matched-reps", "2"], 8),
    ],
)
def test_schedule(monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: int) -> None:
    monkeypatch.setattr(sys, "argv", ["run.py", *argv])
    plan = run.schedule(run.parse_args())
    assert len(plan) == expected
    assert [c.name for _, _, c in plan[:4]] == [c.name for c in run.CONTENDERS]


def _run(contender: str, column: str, wall: float, verdicts: list[bool]) -> dict[str, Any]:
    return {
        "size": 10,
        "rep": 0,
        "contender": contender,
        "status": "ok",
        "wall_s": wall,
        "cpu_s": wall,
        "peak_rss_mib": 100.0,
        "baseline_rss_mib": 50.0,
        "process_peak_rss_mib": 120.0,
        "breakdown_s": {},
        "versions": {"numpy": "2"},
        "window_s": wall / 2,
        "columns": {column: {"verdicts": verdicts, "scores": [0.0] * 4, "methods": ["ks"] * 4}},
    }


def _results() -> dict[str, Any]:
    """A run of 4 features at 10 rows: ours, the scipy loop 4x slower, Evidently timed out."""
    return {
        "date": "2026-01-01T00:00:00+00:00",
        "revision": "abc1234",
        "command": "python run.py",
        "machine": {
            "cpu_model": "CPU",
            "nproc": 2,
            "memory_gib": 24.0,
            "kernel": "6",
            "python": "3.11",
        },
        "loadavg_start": [0.0, 0.0, 0.0],
        "loadavg_end": [0.0, 0.0, 0.0],
        "total_s": 10.0,
        "data": {"10": {"prepare_s": 0.0}},
        "config": {
            "features": 4,
            "shifted": [0, 1],
            "sizes": [10],
            "seed": 1,
            "shift_sigmas": 0.5,
            "reps": 1,
            "large_reps": 1,
            "matched_reps": 1,
            "large_contenders": ["ours"],
            "contender_cpu": 0,
            "limit_s": 600.0,
            "evidently_limit_s": 300.0,
            "memory_limit_gib": 12.0,
        },
        "runs": [
            _run("ours", "ours", 1.0, [True, True, False, False]),
            _run("scipy-loop", "scipy-ks", 4.0, [True, False, True, False]),
            {
                "size": 10,
                "rep": 0,
                "contender": "evidently-defaults",
                "status": "timeout",
                "limit_s": 300.0,
            },
        ],
    }


def test_summary_scores_verdicts_and_ratios() -> None:
    summary = report.summarize(_results())
    verdicts = summary["verdicts"]["10"]
    assert (verdicts["ours"]["precision"], verdicts["ours"]["recall"]) == (1.0, 1.0)
    assert (verdicts["scipy-ks"]["precision"], verdicts["scipy-ks"]["recall"]) == (0.5, 0.5)
    assert summary["agreement"]["10"]["matrix"] == [[4, 2], [2, 4]]
    assert summary["ratios"]["10"]["scipy-loop"]["wall"] == 4.0
    assert summary["ratios"]["10"]["evidently-defaults"] == {"wall_at_least": 300.0}
    assert summary["timing"]["10"]["evidently-defaults"]["outcomes"] == ["timeout"]


def test_render_reports_a_timeout_as_a_lower_bound() -> None:
    page = report.render(_results())
    assert "| 10 | evidently-defaults | **> 300x** (0/1, 1 timeout > 300 s) |" in page


def test_end_to_end_without_evidently(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(Path(run.__file__)),
        "--sizes",
        "3000",
        "--reps",
        "1",
        "--contenders",
        "ours",
        "scipy-loop",
        "--data-dir",
        str(tmp_path / "data"),
        "--out-dir",
        str(tmp_path / "out"),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["ok", "ok"]
    verdicts = results["summary"]["verdicts"]["3000"]
    assert verdicts["ours"]["recall"] == verdicts["scipy-wasserstein"]["recall"] == 1.0
    assert (tmp_path / "out" / "results.md").read_text().startswith("# Drift benchmark")


# -- fidelity ---------------------------------------------------------------------------------


def test_cases_are_deterministic_and_shift_only_the_chosen_columns() -> None:
    table = cases.synthetic(rows=2000)
    case = cases.make_case(table, "additive", 0.5, seed=3)
    again = cases.make_case(table, "additive", 0.5, seed=3)
    np.testing.assert_array_equal(case.current, again.current)
    assert case.shifted is not None
    assert sum(case.shifted) == int(np.ceil(cases.SHIFTED_SHARE * len(table.names)))
    chosen = np.array(case.shifted)
    for kind, level in [("additive", 0.5), ("scale", 0.3), ("dispersion", 0.5), ("outliers", 0.1)]:
        rng = np.random.default_rng(0)
        shifted = cases.shift(kind, level, case.reference, case.reference, chosen, rng)
        moved = np.any(shifted != case.reference, axis=0)
        assert moved.tolist() == chosen.tolist(), kind
    null = cases.make_case(table, "null", 0.0, seed=3)
    missing = cases.make_case(table, "missing", 0.3, seed=3)
    assert np.isnan(missing.current).any()
    assert not np.isnan(missing.reference).any()
    prior = cases.make_case(table, "class-prior", 0.45, seed=3)
    assert prior.shifted is None
    assert prior.drift
    assert not null.drift


def test_fidelity_scores_ours_against_the_truth_without_evidently() -> None:
    tables = [cases.synthetic(rows=1200), cases.bundled()[0]]
    chosen = [
        cases.make_case(tables[0], "null", 0.0, 0),
        cases.make_case(tables[0], "missing", 0.3, 0),
        cases.make_case(tables[0], "additive", 0.5, 0),
        cases.make_case(tables[1], "null", 0.0, 0),
    ]
    ours = fidelity.ours(chosen)
    default = {case.id: ours[case.id][fidelity_report.DEFAULT]["verdicts"] for case in chosen}
    assert not fidelity_report.dataset_drift(default[chosen[0].id])
    assert fidelity_report.dataset_drift(default[chosen[1].id])  # Evidently drops NaN: misses
    assert fidelity_report.dataset_drift(default[chosen[2].id])
    assert not fidelity_report.dataset_drift(default[chosen[3].id])  # iris, 75-row windows
    # The old representation never sees missing values.
    assert not fidelity_report.dataset_drift(ours[chosen[1].id]["before-bonferroni"]["verdicts"])
    document = {
        "date": "2026-01-01T00:00:00+00:00",
        "command": "python fidelity.py",
        "evidently": "skipped",
        "seconds": {"total": 1.0, "ours": 1.0, "evidently": 0.0},
        "tables": {t.name: list(t.values.shape) for t in tables},
        "configs": {name: rep for name, (rep, _) in fidelity.CONFIGS.items()},
        "cases": [fidelity.case_record(c, ours[c.id], None) for c in chosen],
    }
    page = fidelity_report.render(document)
    assert page.startswith("# Drift fidelity")
    assert f"| **{fidelity_report.DEFAULT}** |" in page
