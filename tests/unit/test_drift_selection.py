"""The auto method table, thresholds and multiple-testing corrections."""

import numpy as np
import pytest
from scipy import stats

from modelops.core.drift import DEFAULT_THRESHOLDS, adjust_p_values, select_method
from modelops.core.drift.selection import is_p_value_method

CONTINUOUS = [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]  # 10 non-empty buckets
DISCRETE = [0, 300, 0, 300, 0, 300, 0, 100, 0, 0]  # 4 non-empty buckets


@pytest.mark.parametrize(
    ("kind", "counts", "expected"),
    [
        ("numeric", CONTINUOUS, "ks"),  # 1000 rows: still the small-reference column
        ("numeric", [c * 2 for c in CONTINUOUS], "wasserstein"),
        ("numeric", DISCRETE, "chi2"),
        ("numeric", [c * 2 for c in DISCRETE], "js"),
        ("numeric", [0, 400, 0, 0, 600, 0], "chi2"),  # binary: Evidently's Z-test ≡ chi2
        ("numeric", [100, 100, 100, 100, 100, 0], "chi2"),  # 5 values: still discrete
        ("numeric", [100, 100, 100, 100, 100, 1], "ks"),  # 6 values
        ("categorical", [300, 300, 400], "chi2"),
        ("categorical", [300, 300, 401], "js"),
        ("categorical", [5] * 40, "chi2"),  # many categories: not numeric, so never ks
    ],
)
def test_auto_table(kind: str, counts: list[int], expected: str) -> None:
    assert select_method(kind, counts) == expected  # type: ignore[arg-type]


def test_default_thresholds() -> None:
    assert dict(DEFAULT_THRESHOLDS) == {
        "ks": 0.05,
        "chi2": 0.05,
        "psi": 0.1,
        "js": 0.1,
        "wasserstein": 0.1,
    }
    assert {m for m in DEFAULT_THRESHOLDS if is_p_value_method(m)} == {"ks", "chi2"}


def test_benjamini_hochberg_by_hand() -> None:
    # Sorted p: .01 .02 .03 .04 .2 (m=5) → p·m/rank: .05 .05 .05 .05 .2, already monotone.
    p = np.array([0.04, 0.01, 0.2, 0.03, 0.02])
    np.testing.assert_allclose(adjust_p_values(p, "fdr"), [0.05, 0.05, 0.2, 0.05, 0.05])
    # Step-up: .001 .03 .031 (m=3) → .003 .045 .031 → running min from the top: .003 .031 .031.
    np.testing.assert_allclose(
        adjust_p_values(np.array([0.031, 0.001, 0.03]), "fdr"), [0.031, 0.003, 0.031]
    )


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.random.default_rng(3).random(50) ** 3
    np.testing.assert_allclose(
        adjust_p_values(p, "fdr"), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )


def test_bonferroni_and_none() -> None:
    p = np.array([0.001, 0.02, 0.5])
    np.testing.assert_allclose(adjust_p_values(p, "bonferroni"), [0.003, 0.06, 1.0])
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)


def test_nan_p_values_are_not_tests() -> None:
    p = np.array([0.01, np.nan, 0.02])
    adjusted = adjust_p_values(p, "bonferroni")
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04])
    assert np.isnan(adjusted[1])
    assert adjust_p_values(np.array([]), "fdr").size == 0


def test_unknown_correction() -> None:
    with pytest.raises(ValueError, match="Unknown correction"):
        adjust_p_values(np.array([0.1]), "holm")  # type: ignore[arg-type]
