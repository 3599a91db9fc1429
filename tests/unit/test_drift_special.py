"""The distribution tails of modelops.core.drift.special against scipy.stats."""

import math

import numpy as np
import pytest
from scipy import stats

from modelops.core.drift.special import chi2_sf, kolmogorov_sf


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 10, 31, 100, 999])
def test_chi2_sf_matches_scipy(dof: int) -> None:
    # Both sides of the series/continued-fraction switch at x = dof/2 + 1, out to deep tails.
    points = np.concatenate(
        [np.linspace(0.01, 6.0 * dof + 60.0, 300), [dof / 2, dof / 2 + 1, dof, dof + 2]]
    )
    ours = np.array([chi2_sf(float(x), dof) for x in points])
    np.testing.assert_allclose(ours, stats.chi2.sf(points, dof), rtol=1e-10, atol=1e-300)


def test_chi2_sf_edge_cases() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(5.0, 0) == 1.0
    assert chi2_sf(math.inf, 2) == 0.0
    assert math.isnan(chi2_sf(math.nan, 2))
    with pytest.raises(ValueError, match="non-negative"):
        chi2_sf(1.0, -1)


def test_kolmogorov_sf_matches_kstwobign() -> None:
    x = np.linspace(0.0, 7.0, 5001)
    expected = stats.kstwobign.sf(x)
    np.testing.assert_allclose(kolmogorov_sf(x), expected, rtol=1e-12, atol=1e-300)


def test_kolmogorov_sf_shapes_and_edges() -> None:
    assert kolmogorov_sf(np.array([[0.5, 2.0]])).shape == (1, 2)
    assert float(kolmogorov_sf(0.0)) == 1.0
    assert float(kolmogorov_sf(-1.0)) == 1.0
    assert math.isnan(float(kolmogorov_sf(math.nan)))
