"""Distribution tails needed by the drift tests, in plain numpy and :mod:`math`.

scipy is a test-only dependency of the operator, so the two survival functions the p-value
tests need are implemented here and checked against ``scipy.stats`` in the unit tests:

- :func:`chi2_sf`, the chi-squared survival function, through the regularised upper incomplete
  gamma function ``Q(k/2, x/2)`` (series and continued fraction as in *Numerical Recipes*,
  §6.2, "Incomplete Gamma Function");
- :func:`kolmogorov_sf`, the survival function of the limiting Kolmogorov distribution
  (scipy's ``kstwobign``), by its two classical series.
"""

import math

import numpy as np
import numpy.typing as npt

# The series and the continued fraction stop once a term changes the sum by less than this
# relative amount; the results agree with scipy to ~1e-12 relative, far tails included.
_RELATIVE_EPSILON = 1e-16
# Both expansions converge in O(sqrt(a)) steps; the cap only guards against a bug looping forever
# on non-finite input that slipped through the checks below.
_MAX_ITERATIONS = 100_000
# Stand-in for zero in the modified Lentz algorithm, which would otherwise divide by 0.
_TINY = 1e-300


def chi2_sf(statistic: float, dof: int) -> float:
    """Return P(X >= statistic) for X chi-squared with ``dof`` degrees of freedom.

    ``dof == 0`` is the degenerate distribution at 0: every non-negative statistic has
    probability 1, which is what a test over a single non-empty category should report.
    An infinite statistic (a category with zero expected count was observed) gives 0.
    """
    if dof < 0:
        raise ValueError(f"Degrees of freedom must be non-negative, got {dof}")
    if math.isnan(statistic):
        return math.nan
    if dof == 0 or statistic <= 0.0:
        return 1.0
    if math.isinf(statistic):
        return 0.0
    return _upper_regularised_gamma(dof / 2.0, statistic / 2.0)


def _upper_regularised_gamma(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a) for a > 0, x > 0."""
    # The series for P converges fast below a + 1, the continued fraction for Q above it;
    # computing the smaller of P and Q directly keeps full relative precision in the tail.
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = 1.0 / a
        total = term
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _RELATIVE_EPSILON:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    # Continued fraction for Q evaluated with the modified Lentz algorithm.
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1.0) < _RELATIVE_EPSILON:
            break
    return math.exp(log_prefactor) * fraction


# Where the two Kolmogorov series trade places: at 1.0 both need at most 5 terms for double
# precision (the alternating series' 5th term is e^-50, the theta series' 4th is e^-60).
_KOLMOGOROV_SPLIT = 1.0
_KOLMOGOROV_TERMS = 6


def kolmogorov_sf(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return P(K > x) for the Kolmogorov distribution K = sup |B(t)| of a Brownian bridge.

    This is the limit law of sqrt(n)·D_n (scipy's ``kstwobign``). Above ``x = 1`` the
    alternating series ``2 Σ (-1)^(k-1) exp(-2k²x²)`` is used; below it the cumulative
    distribution is computed by its Jacobi-theta form
    ``sqrt(2π)/x · Σ exp(-(2k-1)²π²/(8x²))``, which converges fast where the alternating one
    does not. Elementwise over ``x``; ``x <= 0`` gives 1 and NaN stays NaN.
    """
    values = np.asarray(x, dtype=np.float64)
    result = np.ones_like(values)
    large = values >= _KOLMOGOROV_SPLIT
    small = (values > 0.0) & ~large
    k = np.arange(1, _KOLMOGOROV_TERMS + 1, dtype=np.float64)

    xl = values[large][..., np.newaxis]
    signs = np.where(k % 2 == 1, 1.0, -1.0)
    result[large] = 2.0 * np.sum(signs * np.exp(-2.0 * k**2 * xl**2), axis=-1)

    xs = values[small][..., np.newaxis]
    theta = np.sum(np.exp(-((2.0 * k - 1.0) ** 2) * np.pi**2 / (8.0 * xs**2)), axis=-1)
    result[small] = 1.0 - math.sqrt(2.0 * math.pi) / xs[..., 0] * theta

    result[np.isnan(values)] = np.nan
    return np.clip(result, 0.0, 1.0)
