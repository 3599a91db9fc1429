"""The Prometheus alert rules: valid for promtool, behaving as their unit tests say, and
written against series the operator really exports.

promtool (Prometheus 2.42, built by ``make tools``) is required: without it these tests fail
rather than skip, because an untested rule file is how alerts silently stop firing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.cluster import DEFAULT_BIN_DIR
from modelops.observability import DriftSample, FeatureDriftSample, OperatorMetrics

RULES_DIR = Path(__file__).resolve().parents[2] / "manifests" / "prometheus"
RULES = RULES_DIR / "modelops-rules.yaml"
TESTS = RULES_DIR / "tests.yaml"
ALERTS = {"ModelDriftDetected", "DriftEvaluationStale", "DriftEvaluationFailing"}


@pytest.fixture(scope="module")
def promtool() -> Path:
    path = DEFAULT_BIN_DIR / "promtool"
    if not path.is_file():
        pytest.fail(f"promtool not found at {path}: run `make tools` to build it")
    return path


def run(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    result = run(promtool, "check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_the_rules_pass_their_unit_tests(promtool: Path) -> None:
    result = run(promtool, "test", "rules", TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_and_labelled() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    assert set(alerts) == ALERTS
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"])
        assert "{{ $labels.model }}" in rule["annotations"]["summary"]
    tests = yaml.safe_load(TESTS.read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == ALERTS


def test_the_rules_use_only_series_the_operator_exports() -> None:
    metrics = OperatorMetrics.create()
    feature = FeatureDriftSample("x", "psi", 0.3, 0.1, True)
    sample = DriftSample("iris", "v3", 500, (feature,), True, 1.0, True)
    metrics.drift_evaluated("ml", "iris-drift", sample, at=1.0, interval=60)
    exported = {s.name for family in metrics.registry.collect() for s in family.samples}
    rules = yaml.safe_load(RULES.read_text())
    exprs = " ".join(r["expr"] for group in rules["groups"] for r in group["rules"])
    used = set(re.findall(r"modelops_[a-z_]+", exprs))
    assert used
    assert used <= exported, used - exported
