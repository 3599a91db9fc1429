"""The binned drift statistics against scipy on the same bins, and against hand-computed cases."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelops.core.drift import stats as drift_stats

RNG = np.random.default_rng(2026)
REFERENCE = RNG.integers(0, 60, size=(6, 8)).astype(float)
CURRENT = RNG.integers(0, 60, size=(6, 8)).astype(float)
# Empty buckets on one side, and a bucket empty on both.
REFERENCE[0, 2] = 0
CURRENT[1, 5] = 0
REFERENCE[2, 4] = CURRENT[2, 4] = 0
EDGES = np.array([0.0, 1.0, 2.5, 3.0, 5.0, 8.0, 9.0])


def test_psi_two_bucket_shift_by_hand() -> None:
    # 50/50 → 25/75: 0.25·ln 2 + 0.25·ln 1.5.
    assert float(drift_stats.psi([50, 50], [25, 75])) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5), rel=1e-12
    )
    assert float(drift_stats.psi([50, 50], [50, 50])) == 0.0


def test_psi_fills_empty_buckets_like_evidently() -> None:
    # Reference (1, 0): the empty bucket becomes 0.0001 and proportions are not renormalised.
    expected = (1 - 0.5) * math.log(1 / 0.5) + (0.0001 - 0.5) * math.log(0.0001 / 0.5)
    assert float(drift_stats.psi([100, 0], [50, 50])) == pytest.approx(expected, rel=1e-12)
    # When the smallest non-zero share is <= 0.0001, empty buckets get a millionth of it.
    ref = np.array([99_999.0, 1.0, 0.0])
    cur = np.array([1.0, 1.0, 1.0])
    r = np.array([0.99999, 0.00001, 0.00001 / 1e6])
    c = np.full(3, 1 / 3)
    assert float(drift_stats.psi(ref, cur)) == pytest.approx(np.sum((r - c) * np.log(r / c)))


def test_jensen_shannon_matches_scipy_base_e() -> None:
    ours = drift_stats.jensen_shannon(REFERENCE, CURRENT)
    expected = [jensenshannon(r, c) for r, c in zip(REFERENCE, CURRENT, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_jensen_shannon_bounds() -> None:
    assert float(drift_stats.jensen_shannon([1, 0], [0, 1])) == pytest.approx(
        math.sqrt(math.log(2))
    )
    assert float(drift_stats.jensen_shannon([3, 4, 5], [6, 8, 10])) == pytest.approx(0.0, abs=1e-8)


def test_ks_statistic_equals_scipy_when_values_sit_on_edges() -> None:
    # Integer data with the integers as edges: the binned CDFs are the exact ECDFs.
    reference = RNG.poisson(4.0, size=700)
    current = RNG.poisson(4.6, size=450)
    edges = np.arange(0, 12)
    ref_counts = np.bincount(np.searchsorted(edges, reference), minlength=13)
    cur_counts = np.bincount(np.searchsorted(edges, current), minlength=13)
    result = drift_stats.ks(ref_counts, cur_counts)
    exact = stats.ks_2samp(reference, current, method="asymp")
    assert float(result.statistic) == pytest.approx(exact.statistic, abs=1e-12)
    en = 700 * 450 / (700 + 450)
    assert float(result.p_value) == pytest.approx(
        stats.kstwobign.sf(math.sqrt(en) * exact.statistic), rel=1e-10
    )
    # scipy's finite-n law at round(en) is close to the asymptotic one and below it.
    assert exact.pvalue <= float(result.p_value) <= 1.25 * exact.pvalue


def test_ks_binned_statistic_is_a_lower_bound() -> None:
    reference = RNG.normal(size=2000)
    current = RNG.normal(0.1, 1.2, size=1500)
    edges = np.quantile(reference, np.linspace(0.1, 0.9, 9))
    ref_counts = np.bincount(np.searchsorted(edges, reference), minlength=10)
    cur_counts = np.bincount(np.searchsorted(edges, current), minlength=10)
    binned = drift_stats.ks(ref_counts, cur_counts)
    exact = stats.ks_2samp(reference, current)
    assert 0 < float(binned.statistic) <= exact.statistic
    assert float(binned.p_value) >= exact.pvalue


def test_bucket_points() -> None:
    np.testing.assert_allclose(drift_stats.bucket_points([0.0, 1.0, 3.0]), [-0.5, 0.5, 2.0, 4.0])
    np.testing.assert_allclose(drift_stats.bucket_points([2.0]), [1.5, 2.5])
    np.testing.assert_allclose(drift_stats.bucket_points([]), [0.0])
    # One bucket: nothing can move.
    assert float(drift_stats.wasserstein([5], [9], drift_stats.bucket_points([]))) == 0.0


def test_wasserstein_matches_scipy_on_bucket_points() -> None:
    x = drift_stats.bucket_points(EDGES)
    ours = drift_stats.wasserstein(REFERENCE, CURRENT, x)
    for row, (r, c) in enumerate(zip(REFERENCE, CURRENT, strict=True)):
        std = math.sqrt(np.average((x - np.average(x, weights=r)) ** 2, weights=r))
        expected = stats.wasserstein_distance(x, x, r, c) / std
        assert ours[row] == pytest.approx(expected, rel=1e-12)


def test_wasserstein_equals_evidently_on_raw_values_at_bucket_points() -> None:
    # Raw values placed at the bucket points: Evidently's formula on the raw data.
    x = drift_stats.bucket_points(EDGES)
    r, c = REFERENCE[3].astype(int), CURRENT[3].astype(int)
    raw_ref, raw_cur = np.repeat(x, r), np.repeat(x, c)
    expected = stats.wasserstein_distance(raw_ref, raw_cur) / max(np.std(raw_ref), 0.001)
    assert float(drift_stats.wasserstein(r, c, x)) == pytest.approx(expected, rel=1e-9)


def test_wasserstein_is_scale_free_and_floors_the_std() -> None:
    x = drift_stats.bucket_points(EDGES)
    a = drift_stats.wasserstein(REFERENCE[0], CURRENT[0], x)
    b = drift_stats.wasserstein(REFERENCE[0], CURRENT[0], 1000.0 * x - 7.0)
    assert float(a) == pytest.approx(float(b), rel=1e-12)
    # A constant reference has std 0: Evidently's 0.001 floor applies.
    assert float(drift_stats.wasserstein([10, 0], [5, 5], [0.0, 1.0])) == pytest.approx(500.0)


def test_chi2_matches_scipy_contingency_without_yates() -> None:
    result = drift_stats.chi2(REFERENCE, CURRENT)
    for row, (r, c) in enumerate(zip(REFERENCE, CURRENT, strict=True)):
        keep = (r + c) > 0
        table = np.vstack([r[keep], c[keep]])
        expected = stats.chi2_contingency(table, correction=False)
        assert result.statistic[row] == pytest.approx(expected.statistic, rel=1e-12)
        assert result.p_value[row] == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi2_on_two_buckets_is_evidentlys_z_test() -> None:
    # Evidently's two-proportion Z-test with pooled variance: z² = χ², same two-sided p.
    n1, x1, n2, x2 = 400, 230, 900, 470
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    result = drift_stats.chi2([x1, n1 - x1], [x2, n2 - x2])
    assert float(result.statistic) == pytest.approx(z**2, rel=1e-12)
    assert float(result.p_value) == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_chi2_homogeneity_does_not_over_fire_on_large_windows() -> None:
    # A 200-row reference 55/45 by sampling noise; a 5000-row window at exactly 50/50.
    reference, current = np.array([110.0, 90.0]), np.array([2500.0, 2500.0])
    ours = drift_stats.chi2(reference, current)
    assert float(ours.p_value) > 0.05
    # Evidently's goodness-of-fit form takes 55/45 as exact and calls this drift.
    goodness_of_fit = stats.chisquare(current, reference / reference.sum() * current.sum())
    assert goodness_of_fit.pvalue < 1e-10


def test_chi2_degenerate_tables() -> None:
    # One non-empty bucket on both sides: zero degrees of freedom, nothing to test.
    single = drift_stats.chi2([10, 0], [7, 0])
    assert float(single.statistic) == 0.0
    assert float(single.p_value) == 1.0
    # A bucket the reference never saw is finite evidence (the reference is a sample too).
    unseen = drift_stats.chi2([1000, 0], [90, 10])
    assert float(unseen.p_value) < 1e-15


def test_empty_side_gives_nan() -> None:
    empty, full = [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]
    assert math.isnan(float(drift_stats.psi(full, empty)))
    assert math.isnan(float(drift_stats.jensen_shannon(full, empty)))
    assert math.isnan(float(drift_stats.wasserstein(full, empty, [0.0, 1.0, 2.0])))
    assert math.isnan(float(drift_stats.ks(full, empty).p_value))
    assert math.isnan(float(drift_stats.chi2(full, empty).p_value))


def test_batched_rows_equal_single_calls() -> None:
    x = drift_stats.bucket_points(EDGES)
    batched = {
        "psi": drift_stats.psi(REFERENCE, CURRENT),
        "js": drift_stats.jensen_shannon(REFERENCE, CURRENT),
        "ks": drift_stats.ks(REFERENCE, CURRENT).p_value,
        "chi2": drift_stats.chi2(REFERENCE, CURRENT).p_value,
        "wasserstein": drift_stats.wasserstein(REFERENCE, CURRENT, x),
    }
    for row, (r, c) in enumerate(zip(REFERENCE, CURRENT, strict=True)):
        assert batched["psi"][row] == float(drift_stats.psi(r, c))
        assert batched["js"][row] == float(drift_stats.jensen_shannon(r, c))
        assert batched["ks"][row] == float(drift_stats.ks(r, c).p_value)
        assert batched["chi2"][row] == float(drift_stats.chi2(r, c).p_value)
        assert batched["wasserstein"][row] == float(drift_stats.wasserstein(r, c, x))


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        ([1, 2], [1, 2, 3], "differ in shape"),
        ([1, -2], [1, 2], "non-negative"),
        ([1, np.nan], [1, 2], "finite"),
        ([], [], "at least one bucket"),
    ],
)
def test_rejects_bad_counts(reference: list[float], current: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift_stats.psi(reference, current)
