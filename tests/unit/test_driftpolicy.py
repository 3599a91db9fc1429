"""DriftPolicy decisions, table-driven and without a cluster.

Most tests run the loop a reconcile runs in production: decide, then merge the planned status
patch into the policy the way the API server does (a JSON merge patch on the status
subresource) and feed the result to the next decision. Nothing else is faked: the statistics,
windowing and hysteresis are the real ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from modelops import api
from modelops.core import driftpolicy as dp
from modelops.core.drift import FeatureOverride, parse_reference
from modelops.core.plan import EventSpec, Plan
from modelops.observability import DriftSample, FeatureDriftSample, OperatorMetrics

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NS = "ml"
DIGEST = "sha256:" + "ab" * 32
REFERENCE: dict[str, Any] = {
    "rows": 100,
    "features": [
        {"name": "x1", "type": "numeric", "binEdges": [0.0, 1.0, 2.0], "counts": [10, 40, 40, 10]},
        {
            "name": "colour",
            "type": "categorical",
            "categories": ["red", "blue"],
            "counts": [50, 50],
        },
    ],
}
FEATURES = parse_reference(REFERENCE)
CLEAN = {"x1": [50.0, 200.0, 200.0, 50.0], "colour": [250.0, 250.0, 0.0]}
DRIFTED = {"x1": [10.0, 40.0, 200.0, 250.0], "colour": [100.0, 100.0, 300.0]}
SPARSE = {"x1": [1.0, 4.0, 4.0, 1.0], "colour": [5.0, 5.0, 0.0]}
TEMPLATE: dict[str, Any] = {
    "image": "ghcr.io/modelops/trainer:0.1.0",
    "command": ["python", "-m", "modelops.runtimes.trainer"],
    "dataset": {"uri": "pvc://datasets/iris.csv"},
    "output": {"pvc": {"claimName": "models"}},
}


def make_policy(**spec: Any) -> api.DriftPolicy:
    body: dict[str, Any] = {
        "modelRef": {"name": "iris"},
        "method": "psi",
        "interval": "60s",
        "window": "10m",
        "consecutiveWindows": 2,
        "minSamples": 100,
    }
    body.update(spec)
    return api.DriftPolicy.model_validate(
        {
            "metadata": {"name": "iris-drift", "namespace": NS, "uid": "p-uid", "generation": 3},
            "spec": body,
        }
    )


def make_model(*, production: str | None = "v3", training: bool = True) -> api.Model:
    return api.Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": NS, "uid": "model-uid", "generation": 1},
            "spec": {"training": TEMPLATE} if training else {},
            "status": {"productionVersion": production} if production else {},
        }
    )


def make_version(version: str = "v3", *, reference: bool = True) -> api.ModelVersion:
    spec: dict[str, Any] = {
        "modelRef": {"name": "iris"},
        "version": version,
        "artifact": {
            "uri": f"pvc://models/iris/{version}",
            "digest": DIGEST,
            "format": "modelops-linear/v1",
        },
    }
    if reference:
        spec["referenceStats"] = f"pvc://models/iris/{version}/reference.json"
    return api.ModelVersion.model_validate(
        {"metadata": {"name": f"iris-{version}", "namespace": NS, "uid": "mv-uid"}, "spec": spec}
    )


def run(name: str, created: datetime, phase: str | None = None) -> api.TrainingRun:
    return api.TrainingRun.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": NS,
                "creationTimestamp": created.isoformat(),
                "labels": {"modelops.dev/driftpolicy": "iris-drift"},
            },
            "spec": {**TEMPLATE, "modelRef": {"name": "iris"}},
            "status": {"phase": phase} if phase else {},
        }
    )


def observed(
    counts: dict[str, list[float]],
    *,
    version: str = "v3",
    model: api.Model | None = None,
    runs: Sequence[api.TrainingRun] = (),
) -> dp.Observed:
    return dp.Observed(
        model=model or make_model(),
        version=version,
        reference=FEATURES,
        counts={k: np.array(v) for k, v in counts.items()},
        runs=tuple(runs),
    )


def merge(live: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies a status patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(live) if isinstance(live, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def written(policy: api.DriftPolicy, plan: Plan) -> api.DriftPolicy:
    """The policy after the API server applied the plan's status patch."""
    (patch,) = plan.status
    body = policy.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["status"] = merge(body.get("status", {}), patch.status)
    return api.DriftPolicy.model_validate(body)


def condition(policy: api.DriftPolicy, type_: str) -> api.Condition:
    return next(c for c in policy.status.conditions if c.type == type_)


def reasons(events: Sequence[EventSpec]) -> list[str]:
    return [e.reason for e in events]


@dataclass
class Loop:
    """Successive evaluations of one policy, each fed the status the previous one wrote and
    the TrainingRuns the previous ones created."""

    policy: api.DriftPolicy
    model: api.Model = field(default_factory=make_model)
    runs: list[api.TrainingRun] = field(default_factory=list)
    now: datetime = NOW
    events: list[list[str]] = field(default_factory=list)

    def step(self, counts: dict[str, list[float]], *, version: str = "v3") -> dp.Decision:
        decision = dp.reconcile(
            self.policy,
            observed(counts, version=version, model=self.model, runs=self.runs),
            now=self.now,
        )
        self.policy = written(self.policy, decision.plan)
        for obj in decision.plan.create:
            meta = {**obj["metadata"], "creationTimestamp": self.now.isoformat()}
            self.runs.append(api.TrainingRun.model_validate({**obj, "metadata": meta}))
        self.events.append(reasons(decision.plan.events))
        self.now += timedelta(seconds=60)
        return decision

    def finish_runs(self) -> None:
        self.runs = [
            api.TrainingRun.model_validate(
                {**r.model_dump(mode="json", by_alias=True), "status": {"phase": "Succeeded"}}
            )
            for r in self.runs
        ]


# -- collection helpers ---------------------------------------------------------------------


def test_target_version_is_the_pin_else_production() -> None:
    assert dp.target_version(make_policy(version="v1"), make_model()) == "v1"
    assert dp.target_version(make_policy(), make_model()) == "v3"
    assert dp.target_version(make_policy(), make_model(production=None)) is None
    assert dp.target_version(make_policy(), None) is None


def test_drift_config_maps_the_spec() -> None:
    config = dp.drift_config(
        make_policy(
            method="auto",
            thresholds={"distance": 0.2, "pValue": 0.01},
            correction="bh",
            datasetDriftShare=0.25,
            minSamples=7,
            features=["x1"],
            perFeature=[{"name": "x1", "method": "wasserstein", "threshold": 0.3}],
        ).spec
    )
    assert config.method == "auto"
    assert dict(config.thresholds) == {
        "psi": 0.2,
        "js": 0.2,
        "wasserstein": 0.2,
        "ks": 0.01,
        "chi2": 0.01,
    }
    assert config.correction == "fdr"
    assert config.dataset_drift_share == 0.25
    assert config.min_samples == 7
    assert config.features == ("x1",)
    assert config.overrides["x1"] == FeatureOverride(method="wasserstein", threshold=0.3)


def test_series_counts_follow_the_reference_bucket_order() -> None:
    series = dp.FeatureSeries(
        buckets={"x1": {math.inf: 10.0, 2.0: 9.0, 0.0: 1.0, 1.0: 5.0}},
        categories={"colour": {"__other__": 2.0, "red": 3.0}},
    )
    counts = dp.series_counts(series, FEATURES)
    # Then the missing count, the out-of-range distances and the offset, none exported here.
    assert counts["x1"].tolist() == [1.0, 4.0, 4.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert counts["colour"].tolist() == [3.0, 0.0, 2.0, 0.0]


def test_series_counts_leave_out_features_the_series_lack() -> None:
    series = dp.FeatureSeries(buckets={}, categories={"colour": {"red": 1.0}})
    assert set(dp.series_counts(series, FEATURES)) == {"colour"}


def test_series_counts_smooth_rounding_out_of_order_cumulative_counts() -> None:
    # increase() extrapolates each bucket series separately.
    series = dp.FeatureSeries(
        buckets={"x1": {0.0: 1.0, 1.0: 5.0000001, 2.0: 5.0, math.inf: 6.0}}, categories={}
    )
    counts = dp.series_counts(series, FEATURES)["x1"]
    assert counts.min() >= 0
    assert counts.sum() == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (
            dp.FeatureSeries(buckets={"x1": {0.5: 1.0, 1.0: 2.0, math.inf: 3.0}}, categories={}),
            "Feature x1 is exported with buckets le=[0.5, 1.0, +Inf], but its reference has "
            "bin edges [0.0, 1.0, 2.0, +Inf]",
        ),
        (
            dp.FeatureSeries(buckets={}, categories={"colour": {"green": 1.0}}),
            "Feature colour is exported with categories green that its reference does not have",
        ),
    ],
)
def test_series_of_another_reference_are_refused(series: dp.FeatureSeries, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        dp.series_counts(series, FEATURES)


# -- window(): problems, in the order a person fixes them ---------------------------------------

GOOD = dp.Collected(
    model=make_model(),
    version="v3",
    model_version=make_version(),
    reference=REFERENCE,
    series=dp.FeatureSeries(
        buckets={"x1": {0.0: 50.0, 1.0: 250.0, 2.0: 450.0, math.inf: 500.0}},
        categories={"colour": {"red": 250.0, "blue": 250.0}},
    ),
)


@pytest.mark.parametrize(
    ("collected", "spec", "reason", "message"),
    [
        (replace(GOOD, model=None), {}, dp.MODEL_NOT_FOUND, "Model iris does not exist"),
        (replace(GOOD, version=None), {}, dp.NO_PRODUCTION_VERSION, "has no production version"),
        (
            replace(GOOD, model_version=None),
            {},
            dp.VERSION_NOT_FOUND,
            "ModelVersion iris-v3 does not exist",
        ),
        (
            replace(GOOD, model_version=make_version(reference=False)),
            {},
            dp.NO_REFERENCE_STATISTICS,
            "has no reference statistics",
        ),
        (
            replace(GOOD, problem=dp.Problem(dp.NO_READY_PODS, "no pods")),
            {},
            dp.NO_READY_PODS,
            "no pods",
        ),
        (
            replace(GOOD, reference={"features": []}),
            {},
            dp.INVALID_REFERENCE,
            "The reference statistics of version v3 are invalid",
        ),
        (
            GOOD,
            {"features": ["x1", "petal"]},
            dp.INVALID_POLICY,
            "spec.features names petal, which the reference statistics of version v3 do not have",
        ),
        (
            replace(GOOD, series=dp.FeatureSeries(buckets={"x1": {math.inf: 1.0}}, categories={})),
            {},
            dp.SOURCE_MISMATCH,
            "Feature x1 is exported with buckets",
        ),
        (
            replace(
                GOOD,
                series=None,
                pods={"p1": dp.PodSeries(dp.FeatureSeries(buckets={}, categories={}))},
            ),
            {},
            dp.SOURCE_MISMATCH,
            "Pod p1 exports no distribution for feature x1, colour",
        ),
    ],
)
def test_window_reports_the_first_problem(
    collected: dp.Collected, spec: dict[str, Any], reason: str, message: str
) -> None:
    result = dp.window(make_policy(**spec), collected, dp.Windows(), now=NOW)
    assert result.problem is not None
    assert result.problem.reason == reason
    assert message in result.problem.message
    assert result.counts is None


def test_window_takes_a_prometheus_answer_as_the_window() -> None:
    result = dp.window(make_policy(), GOOD, dp.Windows(), now=NOW)
    assert result.problem is None
    assert result.counts is not None
    assert result.counts["x1"].tolist() == [50.0, 200.0, 200.0, 50.0, 0.0, 0.0, 0.0, 0.0]
    assert result.counts["colour"].tolist() == [250.0, 250.0, 0.0, 0.0]
    assert result.sources == 0


def test_window_watches_only_the_listed_features() -> None:
    result = dp.window(make_policy(features=["colour"]), GOOD, dp.Windows(), now=NOW)
    assert result.counts is not None
    assert set(result.counts) == {"colour"}


def pod_series(
    x1: Sequence[float],
    colour: Sequence[float],
    started: float | None = None,
    missing: tuple[float, float] = (0.0, 0.0),
) -> dp.PodSeries:
    cumulative = np.cumsum(x1).tolist()
    return dp.PodSeries(
        dp.FeatureSeries(
            buckets={"x1": dict(zip([0.0, 1.0, 2.0, math.inf], cumulative, strict=True))},
            categories={"colour": dict(zip(["red", "blue", "__other__"], colour, strict=True))},
            missing={"x1": missing[0], "colour": missing[1]},
            out_of_range={"x1": {"below": 0.0, "above": 2.5 * x1[-1]}},
            offset={"x1": 10.0 * sum(x1)},
        ),
        started_at=started,
    )


def test_pod_scrapes_are_windowed_per_policy_and_restart_on_a_new_version() -> None:
    windows = dp.Windows()
    policy = make_policy()
    old = NOW.timestamp() - 3600
    pods = replace(GOOD, series=None, pods={"p1": pod_series([5, 5, 5, 5], [1, 1, 0], old)})
    first = dp.window(policy, pods, windows, now=NOW)
    assert first.counts is not None
    assert first.counts["x1"].tolist() == [0] * 8  # an old pod's first scrape is a baseline
    assert first.sources == 1
    later = replace(pods, pods={"p1": pod_series([6, 8, 5, 7], [3, 1, 1], old, (2, 1))})
    second = dp.window(policy, later, windows, now=NOW + timedelta(seconds=60))
    assert second.counts is not None
    # Buckets, then the missing count, the distances below and above the outer edges and the
    # offset.
    assert second.counts["x1"].tolist() == [1, 3, 0, 2, 2, 0, 5, 60]
    assert second.counts["colour"].tolist() == [2, 0, 1, 1]
    # Another version has its own reference and counters: a fresh window, a new baseline.
    other = replace(later, version="v4", model_version=make_version("v4"))
    third = dp.window(policy, other, windows, now=NOW + timedelta(seconds=120))
    assert third.counts is not None
    assert third.counts["x1"].tolist() == [0] * 8


def test_windows_forget_a_deleted_policy() -> None:
    windows = dp.Windows()
    pods = replace(GOOD, series=None, pods={"p1": pod_series([5, 5, 5, 5], [1, 1, 0])})
    dp.window(make_policy(), pods, windows, now=NOW)
    assert (NS, "iris-drift") in windows
    windows.forget((NS, "iris-drift"))
    assert (NS, "iris-drift") not in windows


# -- reconcile(): status, conditions, events --------------------------------------------------


def test_a_drifted_window_writes_the_verdict() -> None:
    decision = dp.reconcile(make_policy(), observed(DRIFTED), now=NOW)
    assert decision.plan.requeue_after == 60
    assert decision.evaluation is not None
    assert decision.problem is None
    (patch,) = decision.plan.status
    assert patch.target.name == "iris-drift"
    status = patch.status
    assert status["observedGeneration"] == 3
    assert status["version"] == "v3"
    assert status["lastEvaluation"] == "2026-11-28T12:00:00Z"
    assert status["samples"] == 500
    assert status["datasetDrift"] is True
    assert status["driftedShare"] == 1.0
    assert status["consecutiveDrifted"] == 1
    assert status["consecutiveClean"] == 0
    assert [f["name"] for f in status["topFeatures"]] == ["colour", "x1"]  # worst first
    assert status["topFeatures"][0]["score"] > status["topFeatures"][1]["score"]
    assert all(f["drifted"] and f["method"] == "psi" for f in status["topFeatures"])
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["Ready"]["message"].startswith(
        "Compared 500 predictions of version v3 with its training data: 2 of 2 features drifted"
    )
    assert by_type["InsufficientData"]["status"] == "False"
    assert by_type["DriftDetected"]["status"] == "Unknown"  # one window of two
    assert {c["observedGeneration"] for c in status["conditions"]} == {3}
    assert decision.plan.events == ()


def test_a_feature_drifted_by_its_missing_share_is_reported_first_with_the_shares() -> None:
    # x1's present values are as in training, but 200 of 700 rows miss it (none in training).
    counts = {"x1": [50.0, 200.0, 200.0, 50.0, 200.0, 0.0, 0.0, 0.0], "colour": CLEAN["colour"]}
    decision = dp.reconcile(make_policy(), observed(counts), now=NOW)
    (patch,) = decision.plan.status
    top = patch.status["topFeatures"]
    assert top[0]["name"] == "x1"
    assert top[0]["drifted"] is True
    assert top[0]["score"] < top[0]["threshold"]  # psi: the distribution did not move
    assert top[0]["missingShare"] == pytest.approx(200 / 700, abs=1e-4)
    assert top[0]["referenceMissingShare"] == 0.0
    assert "missingShare" not in top[1]  # colour has no missing values on either side
    assert patch.status["samples"] == 500


# One letter per window: D drifted, C clean, I too few predictions. consecutiveWindows = 2.
HYSTERESIS = [
    ("DD", ["Unknown", "True"], [[], ["DriftDetected"]]),
    ("DCD", ["Unknown", "Unknown", "Unknown"], [[], [], []]),
    ("CC", ["Unknown", "False"], [[], []]),
    ("DDCC", ["Unknown", "True", "True", "False"], [[], ["DriftDetected"], [], ["DriftResolved"]]),
    ("DDCDCC", ["Unknown", "True", "True", "True", "True", "False"], None),
    # Too few predictions neither count nor break a streak.
    ("DID", ["Unknown", "Unknown", "True"], [[], [], ["DriftDetected"]]),
    ("DDIIC", ["Unknown", "True", "True", "True", "True"], None),
    ("CCDCD", ["Unknown", "False", "False", "False", "False"], None),
]
WINDOWS = {"D": DRIFTED, "C": CLEAN, "I": SPARSE}


@pytest.mark.parametrize(("windows", "detected", "events"), HYSTERESIS)
def test_drift_detected_follows_the_hysteresis(
    windows: str, detected: list[str], events: list[list[str]] | None
) -> None:
    loop = Loop(make_policy())
    seen = []
    for letter in windows:
        loop.step(WINDOWS[letter])
        seen.append(condition(loop.policy, "DriftDetected").status.value)
    assert seen == detected
    if events is not None:
        assert loop.events == events


def test_the_hysteresis_survives_an_operator_restart() -> None:
    # Everything is in the status: a fresh decision from the written status continues.
    loop = Loop(make_policy())
    loop.step(DRIFTED)
    restarted = Loop(loop.policy, now=loop.now)
    restarted.step(DRIFTED)
    assert condition(restarted.policy, "DriftDetected").status is api.ConditionStatus.TRUE
    assert restarted.events == [["DriftDetected"]]


def test_too_few_predictions_give_no_verdict() -> None:
    loop = Loop(make_policy())
    loop.step(DRIFTED)
    decision = loop.step(SPARSE)
    (patch,) = decision.plan.status
    assert patch.status["datasetDrift"] is None  # removed by the merge patch
    assert patch.status["driftedShare"] is None
    assert patch.status["topFeatures"] is None
    status = loop.policy.status
    assert status.samples == 10
    assert status.dataset_drift is None
    assert status.top_features is None
    assert status.consecutive_drifted == 1
    insufficient = condition(loop.policy, "InsufficientData")
    assert insufficient.status is api.ConditionStatus.TRUE
    assert insufficient.reason == "TooFewSamples"
    assert "fewer than spec.minSamples (100)" in insufficient.message
    assert condition(loop.policy, "Ready").status is api.ConditionStatus.TRUE
    assert decision.evaluation is not None
    assert decision.evaluation.verdict is None


def test_a_new_version_starts_its_own_verdict() -> None:
    loop = Loop(make_policy())
    loop.step(DRIFTED)
    loop.step(DRIFTED)
    assert condition(loop.policy, "DriftDetected").status is api.ConditionStatus.TRUE
    decision = loop.step(CLEAN, version="v4")
    assert loop.events[-1] == ["VersionChanged"]
    assert loop.policy.status.version == "v4"
    assert loop.policy.status.consecutive_drifted == 0
    assert loop.policy.status.consecutive_clean == 1
    assert condition(loop.policy, "DriftDetected").status is api.ConditionStatus.UNKNOWN
    assert decision.firing is False


def test_top_features_are_the_worst_ten() -> None:
    names = [f"f{i:02d}" for i in range(12)]
    reference = {
        "features": [
            {"name": n, "type": "numeric", "binEdges": [0.0, 1.0], "counts": [50, 50, 0]}
            for n in names
        ]
    }
    # Feature i moves i percent of its mass to the other bucket: f11 drifted most.
    counts = {n: [500.0 - 5 * i, 500.0 + 5 * i, 0.0] for i, n in enumerate(names)}
    obs = replace(
        observed({}),
        reference=parse_reference(reference),
        counts={k: np.array(v) for k, v in counts.items()},
    )
    decision = dp.reconcile(make_policy(), obs, now=NOW)
    (patch,) = decision.plan.status
    top = patch.status["topFeatures"]
    assert [f["name"] for f in top] == names[::-1][:10]
    scores = [f["score"] for f in top]
    assert scores == sorted(scores, reverse=True)


def test_top_features_rank_p_values_and_distances_together() -> None:
    decision = dp.reconcile(
        make_policy(method="auto", perFeature=[{"name": "colour", "method": "psi"}]),
        observed(DRIFTED),
        now=NOW,
    )
    (patch,) = decision.plan.status
    top = patch.status["topFeatures"]
    methods = {f["name"]: f["method"] for f in top}
    # x1 has four distinct values in training: auto picks chi-squared for it.
    assert methods == {"x1": "chi2", "colour": "psi"}
    x1 = next(f for f in top if f["name"] == "x1")
    assert x1["score"] <= x1["threshold"]  # a corrected p-value, drifted when at most 0.05


# -- problems --------------------------------------------------------------------------------


def test_a_problem_makes_ready_false_and_keeps_the_verdict() -> None:
    loop = Loop(make_policy())
    loop.step(DRIFTED)
    loop.step(DRIFTED)
    problem = dp.Problem(dp.SCRAPE_FAILED, "No ready pod of version v3 could be scraped")
    blocked = dp.Observed(model=make_model(), version="v3", problem=problem)
    decision = dp.reconcile(loop.policy, blocked, now=loop.now)
    assert decision.evaluation is None
    assert decision.problem == problem
    assert decision.firing is True
    assert decision.plan.requeue_after == 60
    assert decision.plan.create == ()
    assert reasons(decision.plan.events) == [dp.SCRAPE_FAILED]
    after = written(loop.policy, decision.plan)
    ready = condition(after, "Ready")
    assert ready.status is api.ConditionStatus.FALSE
    assert ready.reason == dp.SCRAPE_FAILED
    assert ready.message == problem.message
    assert condition(after, "DriftDetected").status is api.ConditionStatus.TRUE
    assert after.status.last_evaluation == loop.policy.status.last_evaluation
    # The same problem again: no new event (the condition already says it).
    again = dp.reconcile(after, blocked, now=loop.now + timedelta(seconds=60))
    assert again.plan.events == ()


def test_a_policy_that_never_ran_gets_every_condition() -> None:
    problem = dp.Problem(dp.MODEL_NOT_FOUND, "Model iris does not exist")
    decision = dp.reconcile(
        make_policy(), dp.Observed(model=None, version=None, problem=problem), now=NOW
    )
    after = written(make_policy(), decision.plan)
    assert {c.type: c.status.value for c in after.status.conditions} == {
        "Ready": "False",
        "DriftDetected": "Unknown",
        "InsufficientData": "Unknown",
    }
    assert after.status.observed_generation == 3
    assert decision.firing is False


def test_a_method_that_does_not_fit_is_an_invalid_policy() -> None:
    policy = make_policy(perFeature=[{"name": "colour", "method": "ks"}])
    decision = dp.reconcile(policy, observed(DRIFTED), now=NOW)
    assert decision.problem is not None
    assert decision.problem.reason == dp.INVALID_POLICY
    assert "cannot judge categorical feature colour" in decision.problem.message


def test_problem_reasons_are_the_closed_set() -> None:
    assert len(set(dp.PROBLEM_REASONS)) == len(dp.PROBLEM_REASONS) == 11


# -- retraining ------------------------------------------------------------------------------

RETRAIN = {"retrain": {"enabled": True, "cooldown": "30m", "maxConcurrent": 1}}


def test_firing_for_many_windows_creates_one_run_within_the_cooldown() -> None:
    loop = Loop(make_policy(actions=RETRAIN))
    created = [loop.step(DRIFTED).retrain_run for _ in range(20)]
    names = [n for n in created if n]
    assert names == ["iris-retrain-20261128120100"]  # the second window fires
    assert len(loop.runs) == 1
    assert loop.events[1] == ["DriftDetected", "RetrainStarted"]
    last = loop.policy.status.last_retrain
    assert last is not None
    assert last.training_run == names[0]
    assert last.time == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("max_concurrent", "finished", "second"),
    [
        (1, False, False),  # the first run is still going: never two at once
        (1, True, True),
        (2, False, True),
    ],
)
def test_after_the_cooldown_another_run_only_if_allowed(
    max_concurrent: int, finished: bool, second: bool
) -> None:
    actions = {"retrain": {"cooldown": "10m", "maxConcurrent": max_concurrent}}
    loop = Loop(make_policy(actions=actions))
    for _ in range(5):
        loop.step(DRIFTED)
    assert len(loop.runs) == 1
    if finished:
        loop.finish_runs()
    for _ in range(10):  # past the cooldown
        loop.step(DRIFTED)
    assert len(loop.runs) == (2 if second else 1)
    if second:
        first, then = (r.metadata.creation_timestamp for r in loop.runs)
        assert first is not None
        assert then is not None
        assert then - first >= timedelta(minutes=10)


def test_a_lost_status_write_still_holds_the_cooldown() -> None:
    # The run was created but the status patch recording it never landed.
    recent = run("iris-retrain-20261128115500", NOW - timedelta(minutes=5), phase="Succeeded")
    loop = Loop(make_policy(actions=RETRAIN), runs=[recent])
    loop.step(DRIFTED)
    decision = loop.step(DRIFTED)
    assert decision.firing is True
    assert decision.retrain_run is None
    assert loop.events[1] == ["DriftDetected", "RetrainSkipped"]


@pytest.mark.parametrize(
    ("actions", "training", "created", "skipped"),
    [
        ({}, True, False, False),
        ({"retrain": {"enabled": False}}, True, False, False),
        (RETRAIN, False, False, True),
        (RETRAIN, True, True, False),
    ],
)
def test_retrain_needs_the_action_and_a_template(
    actions: dict[str, Any], training: bool, created: bool, skipped: bool
) -> None:
    loop = Loop(make_policy(actions=actions), model=make_model(training=training))
    for _ in range(4):
        loop.step(DRIFTED)
    assert bool(loop.runs) is created
    said = [e for step in loop.events for e in step if e == "RetrainSkipped"]
    assert said == (["RetrainSkipped"] if skipped else [])  # once, when drift starts


def test_a_quarantine_on_the_training_data_skips_the_retrain_and_says_why() -> None:
    decision = None
    policy = make_policy(actions=RETRAIN)
    events: list[str] = []
    now = NOW
    for _ in range(3):
        obs = replace(
            observed(DRIFTED, model=make_model()),
            retrain_refused="spec.training.dataset is the dataset sha256:… (Quarantine q1: x)",
        )
        decision = dp.reconcile(policy, obs, now=now)
        policy = written(policy, decision.plan)
        events += [e.message for e in decision.plan.events if e.reason == "RetrainSkipped"]
        now += timedelta(seconds=60)
    assert decision is not None
    assert decision.firing is True
    assert decision.plan.create == ()
    assert events == [
        "Not retraining Model iris: spec.training.dataset is the dataset sha256:… "
        "(Quarantine q1: x)"
    ]


def test_clean_or_insufficient_windows_never_retrain() -> None:
    loop = Loop(make_policy(actions=RETRAIN))
    for counts in (CLEAN, SPARSE, CLEAN, DRIFTED, SPARSE, SPARSE):
        loop.step(counts)
    assert loop.runs == []


def test_the_retrain_run_is_the_template_with_the_evidence() -> None:
    decision = dp.reconcile(
        make_policy(actions=RETRAIN, consecutiveWindows=1), observed(DRIFTED), now=NOW
    )
    (obj,) = decision.plan.create
    parsed = api.TrainingRun.model_validate(obj)
    assert parsed.metadata.name == "iris-retrain-20261128120000"
    assert parsed.metadata.namespace == NS
    assert obj["metadata"]["labels"]["modelops.dev/driftpolicy"] == "iris-drift"
    assert obj["metadata"]["labels"]["modelops.dev/model"] == "iris"
    (owner,) = obj["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Model", "model-uid", False)
    assert parsed.spec.model_ref.name == "iris"
    assert parsed.spec.image == TEMPLATE["image"]
    assert parsed.spec.output.pvc is not None
    assert parsed.spec.output.pvc.claim_name == "models"
    assert parsed.spec.version is None  # the run's name gives the version: retrain-<time>
    trigger = parsed.spec.trigger
    assert trigger is not None
    assert trigger.drift_policy == "iris-drift"
    assert trigger.reason == "Dataset drift of version v3: 2 of 2 features drifted (colour, x1)"
    assert trigger.evidence == {
        "version": "v3",
        "driftedShare": "1",
        "samples": "500",
        "driftedFeatures": "colour,x1",
        "window": "10m",
    }


def test_last_retrain_is_the_latest_of_status_and_runs() -> None:
    policy = make_policy()
    assert dp.last_retrain(policy, []) is None
    runs = [run("a", NOW - timedelta(hours=2)), run("b", NOW - timedelta(hours=1))]
    assert dp.last_retrain(policy, runs) == NOW - timedelta(hours=1)
    status = api.DriftPolicyStatus(
        last_retrain=api.LastRetrain(time=NOW - timedelta(minutes=5), training_run="c")
    )
    assert dp.last_retrain(policy.model_copy(update={"status": status}), runs) == NOW - timedelta(
        minutes=5
    )


# -- exported metrics ------------------------------------------------------------------------


def series(metrics: OperatorMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name.startswith("modelops_drift"):
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


POLICY_LABELS = (("model", "iris"), ("namespace", "ml"), ("policy", "iris-drift"))


def test_a_window_without_verdict_exports_no_verdict() -> None:
    metrics = OperatorMetrics.create()
    sample = DriftSample("iris", "v3", 12, (), None, None, False)
    metrics.drift_evaluated("ml", "iris-drift", sample, at=100.0, interval=60)
    exported = series(metrics)
    version = (*POLICY_LABELS, ("version", "v3"))
    assert exported["modelops_drift_window_samples"] == {version: 12}
    assert exported["modelops_drift_detected"] == {version: 0}
    assert exported["modelops_drift_last_evaluation_timestamp_seconds"] == {POLICY_LABELS: 100}
    assert exported["modelops_drift_evaluation_interval_seconds"] == {POLICY_LABELS: 60}
    for name in ("feature_score", "dataset_drifted", "drifted_share"):
        assert f"modelops_drift_{name}" not in exported
    # Every failure reason is there from the start, at 0.
    failures = exported["modelops_drift_evaluation_failures_total"]
    assert sorted(dict(k)["reason"] for k in failures) == sorted(dp.PROBLEM_REASONS)
    assert set(failures.values()) == {0.0}


def test_a_policy_without_alert_exports_no_detected_gauge() -> None:
    metrics = OperatorMetrics.create()
    feature = FeatureDriftSample("x1", "psi", 0.5, 0.1, True)
    sample = DriftSample("iris", "v3", 500, (feature,), True, 1.0, None)
    metrics.drift_evaluated("ml", "iris-drift", sample, at=100.0, interval=60)
    exported = series(metrics)
    assert "modelops_drift_detected" not in exported
    labels = (*POLICY_LABELS, ("version", "v3"))
    assert exported["modelops_drift_dataset_drifted"] == {labels: 1}
    assert exported["modelops_drift_feature_drifted"] == {
        tuple(sorted((*labels, ("feature", "x1"), ("method", "psi")))): 1
    }


def test_failures_keep_the_verdict_of_the_watched_version_only() -> None:
    metrics = OperatorMetrics.create()
    sample = DriftSample("iris", "v3", 500, (), True, 1.0, True)
    metrics.drift_evaluated("ml", "iris-drift", sample, at=100.0, interval=60)
    metrics.drift_failed(
        "ml", "iris-drift", dp.SCRAPE_FAILED, model="iris", version="v3", interval=60
    )
    assert "modelops_drift_detected" in series(metrics)
    metrics.drift_failed(
        "ml", "iris-drift", dp.VERSION_NOT_FOUND, model="iris", version="v4", interval=60
    )
    exported = series(metrics)
    assert "modelops_drift_detected" not in exported
    failures = exported["modelops_drift_evaluation_failures_total"]
    assert failures[(*POLICY_LABELS, ("reason", dp.SCRAPE_FAILED))] == 1
    assert failures[(*POLICY_LABELS, ("reason", dp.VERSION_NOT_FOUND))] == 1
    # The last successful evaluation stays: it is what DriftEvaluationStale watches.
    assert exported["modelops_drift_last_evaluation_timestamp_seconds"] == {POLICY_LABELS: 100}
    metrics.forget_driftpolicy("ml", "iris-drift")
    assert series(metrics) == {}
