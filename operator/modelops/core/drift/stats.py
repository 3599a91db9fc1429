"""Drift statistics over binned data: reference counts vs current counts in the same buckets.

Every function takes two count arrays of the same shape ``(..., n_buckets)`` — one feature as
a 1-D array, or several features with the same number of buckets stacked as rows — and
reduces over the last axis, so a batch of features costs one vectorised call. Counts may be
integers or integer-valued floats (Prometheus exports counters as floats).

A side with no observations (a total of 0, e.g. an empty window) has no distribution: every
statistic is NaN for it. :func:`modelops.core.drift.evaluate` never gets that far, because it
refuses to judge a window below ``min_samples``.

Formulas, empty-bucket handling and where each choice comes from are in ``docs/drift.md``.
"""

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from modelops.core.drift.special import chi2_sf, kolmogorov_sf

Float64Array = npt.NDArray[np.float64]

# Evidently's value for an empty bucket in PSI (``get_binned_data`` in
# ``evidently/legacy/calculations/stattests/utils.py``): zero proportions become 0.0001, or a
# millionth of the smallest non-zero proportion when that is itself at most 0.0001.
PSI_EMPTY_BUCKET = 0.0001
# Evidently's floor for the reference standard deviation in the normed Wasserstein distance
# (``wasserstein_distance_norm.py``), so a constant reference does not divide by zero.
WASSERSTEIN_MIN_STD = 0.001


class StatTestResult(NamedTuple):
    """A test statistic and its p-value, elementwise over the leading axes."""

    statistic: Float64Array
    p_value: Float64Array


def _pair(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[Float64Array, Float64Array]:
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape:
        raise ValueError(
            f"Reference and current counts differ in shape: {ref.shape} vs {cur.shape}"
        )
    if ref.ndim == 0 or ref.shape[-1] == 0:
        raise ValueError("Counts need at least one bucket")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(cur))):
        raise ValueError("Counts must be finite")
    if np.any(ref < 0) or np.any(cur < 0):
        raise ValueError("Counts must be non-negative")
    return ref, cur


def proportions(counts: npt.ArrayLike) -> Float64Array:
    """Return counts divided by their total along the last axis (NaN where the total is 0)."""
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, array / np.where(total > 0, total, 1.0), np.nan)


def _fill_empty(share: Float64Array) -> Float64Array:
    """Replace zero proportions the way Evidently does before taking logarithms (PSI)."""
    nonzero = np.where(share > 0, share, np.inf)
    smallest = nonzero.min(axis=-1, keepdims=True)
    fill = np.where(smallest <= PSI_EMPTY_BUCKET, smallest / 1e6, PSI_EMPTY_BUCKET)
    return np.where(share == 0, fill, share)


def psi(reference: npt.ArrayLike, current: npt.ArrayLike) -> Float64Array:
    """Population stability index ``Σ (r_i - c_i) · ln(r_i / c_i)`` over bucket proportions.

    Zero proportions are replaced as in Evidently (:data:`PSI_EMPTY_BUCKET`), without
    renormalising, so a bucket empty on one side adds a large but finite term. Symmetric in
    its arguments, 0 for identical proportions, unbounded above.
    """
    ref, cur = _pair(reference, current)
    r = _fill_empty(proportions(ref))
    c = _fill_empty(proportions(cur))
    result: Float64Array = np.sum((r - c) * np.log(r / c), axis=-1)
    return result


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike) -> Float64Array:
    """Jensen-Shannon *distance* with natural logarithms, in ``[0, sqrt(ln 2)] ≈ [0, 0.833]``.

    ``sqrt((KL(r‖m) + KL(c‖m)) / 2)`` with ``m = (r + c) / 2`` — the same number as
    ``scipy.spatial.distance.jensenshannon(r, c)`` with its default base e, which is what
    Evidently calls. NannyML passes ``base=2`` (range [0, 1]); the base-2 value is this one
    divided by ``sqrt(ln 2)``, about 1.2 times larger, so a 0.1 threshold is stricter there.
    Empty buckets need no epsilon (``0 · ln 0 = 0``), and Evidently adds none here.
    """
    ref, cur = _pair(reference, current)
    r = proportions(ref)
    c = proportions(cur)
    m = (r + c) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        kl_r = np.where(r > 0, r * np.log(r / m), 0.0)
        kl_c = np.where(c > 0, c * np.log(c / m), 0.0)
    divergence = (kl_r.sum(axis=-1) + kl_c.sum(axis=-1)) / 2.0
    # Rounding can leave a divergence of -1e-17 for identical inputs.
    result: Float64Array = np.sqrt(np.maximum(divergence, 0.0))
    return result


def ks(reference: npt.ArrayLike, current: npt.ArrayLike) -> StatTestResult:
    """Two-sample Kolmogorov-Smirnov test from binned cumulative distributions.

    ``D`` is the largest gap between the two empirical CDFs at the bucket edges. The exact
    statistic is the largest gap over *all* values; since both empirical CDFs are exact at the
    edges, the binned ``D`` is a lower bound of it (equal when every value sits on an edge),
    and the p-value correspondingly at least the exact test's: binning can hide a difference
    inside a bucket, never enlarge one.

    The p-value is the asymptotic Kolmogorov tail ``P(K > sqrt(n·m/(n+m)) · D)`` with the
    two-sample effective size ``n·m/(n+m)``. ``scipy.stats.ks_2samp(method='asymp')`` instead
    evaluates the finite-n one-sample law at ``round(n·m/(n+m))``; the two converge as the
    effective size grows, and the asymptotic one is slightly larger (more conservative).
    """
    ref, cur = _pair(reference, current)
    gaps = np.abs(np.cumsum(proportions(ref), axis=-1) - np.cumsum(proportions(cur), axis=-1))
    # The last cumulative value is 1 on both sides; leaving it out keeps a 1-bucket feature at 0.
    statistic = np.max(gaps[..., :-1], axis=-1, initial=0.0)
    n = ref.sum(axis=-1)
    m = cur.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        effective = n * m / (n + m)
    statistic = np.where(effective > 0, statistic, np.nan)
    return StatTestResult(statistic, kolmogorov_sf(np.sqrt(effective) * statistic))


def bucket_points(edges: npt.ArrayLike) -> Float64Array:
    """Return one representative value per ``le`` bucket of ``edges`` (``len(edges) + 1``).

    Inner buckets ``(e[i-1], e[i]]`` are represented by their midpoints. The two open-ended
    outer buckets have no midpoint; each is placed half the width of its neighbouring inner
    bucket beyond the outer edge, as if it were as wide as that neighbour. With a single edge
    there is no inner bucket and the two points are ``e[0] ∓ 0.5``; any spacing gives the same
    normed distance, which does not depend on the unit. No edges means one bucket, at 0.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError("edges must be a 1-D sequence")
    if e.size == 0:
        return np.zeros(1)
    if e.size == 1:
        return np.array([e[0] - 0.5, e[0] + 0.5])
    mids = (e[:-1] + e[1:]) / 2.0
    first = e[0] - (e[1] - e[0]) / 2.0
    last = e[-1] + (e[-1] - e[-2]) / 2.0
    return np.concatenate(([first], mids, [last]))


def wasserstein(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    points: npt.ArrayLike,
    *,
    reference_std: float | None = None,
) -> Float64Array:
    """Earth mover's distance between the binned distributions, normed by the reference std.

    Each bucket's mass sits at its representative value (``points``, same shape as the counts
    or broadcastable to them; see :func:`bucket_points`). The 1-D distance is
    ``Σ_i |R_i - C_i| · (x_{i+1} - x_i)`` over the cumulative proportions ``R``, ``C`` —
    equal to ``scipy.stats.wasserstein_distance(x, x, r, c)`` — and is divided by the
    reference standard deviation of the same representative values (population std, as
    ``numpy.std`` in Evidently), floored at :data:`WASSERSTEIN_MIN_STD`. This is Evidently's
    "Wasserstein distance (normed)", with bucket representatives standing in for raw values.
    ``reference_std``, when given (the trainer records the exact one), replaces the standard
    deviation of the representatives, which misses the spread inside each bucket.
    """
    ref, cur = _pair(reference, current)
    x = np.broadcast_to(np.asarray(points, dtype=np.float64), ref.shape)
    if np.any(np.diff(x, axis=-1) <= 0):
        raise ValueError("Bucket points must be strictly increasing")
    r = proportions(ref)
    c = proportions(cur)
    gaps = np.abs(np.cumsum(r, axis=-1) - np.cumsum(c, axis=-1))[..., :-1]
    distance = np.sum(gaps * np.diff(x, axis=-1), axis=-1)
    if reference_std is None:
        mean = np.sum(r * x, axis=-1, keepdims=True)
        std = np.sqrt(np.sum(r * (x - mean) ** 2, axis=-1))
    else:
        std = np.full(distance.shape, reference_std)
    result: Float64Array = distance / np.maximum(std, WASSERSTEIN_MIN_STD)
    return result


def wasserstein_between(
    reference: npt.ArrayLike,
    reference_points: npt.ArrayLike,
    current: npt.ArrayLike,
    current_points: npt.ArrayLike,
    *,
    reference_std: float,
) -> float:
    """Normed earth mover's distance between two weighted point sets of one feature.

    Like :func:`wasserstein`, but each side has its own points (1-D, one per count): the
    reference's mass sits at the reference bin means and the window's at its own estimated
    positions. The distance is the integral of ``|F_r - F_c|`` over the merged, sorted
    points, divided by ``reference_std`` floored at :data:`WASSERSTEIN_MIN_STD`; it equals
    ``scipy.stats.wasserstein_distance(xr, xc, r, c) / std``.
    """
    r = proportions(np.asarray(reference, dtype=np.float64))
    c = proportions(np.asarray(current, dtype=np.float64))
    xr = np.asarray(reference_points, dtype=np.float64)
    xc = np.asarray(current_points, dtype=np.float64)
    if not (r.ndim == c.ndim == 1 and r.shape == xr.shape and c.shape == xc.shape):
        raise ValueError("Each side needs one point per count, as 1-D arrays")
    points = np.concatenate((xr, xc))
    order = np.argsort(points, kind="stable")
    gaps = np.abs(
        np.cumsum(np.concatenate((r, np.zeros(c.size)))[order])
        - np.cumsum(np.concatenate((np.zeros(r.size), c))[order])
    )[:-1]
    distance = float(np.sum(gaps * np.diff(points[order])))
    return distance / max(reference_std, WASSERSTEIN_MIN_STD)


def ks_between(
    reference: npt.ArrayLike,
    reference_points: npt.ArrayLike,
    current: npt.ArrayLike,
    current_points: npt.ArrayLike,
) -> StatTestResult:
    """Two-sample Kolmogorov-Smirnov test between two weighted point sets of one feature.

    Both empirical CDFs are step functions jumping at their points, so the largest gap is
    found at one of the merged points (right-continuous values). The p-value is the same
    asymptotic Kolmogorov tail as :func:`ks`, with the totals of the counts as sample sizes.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    xr = np.asarray(reference_points, dtype=np.float64)
    xc = np.asarray(current_points, dtype=np.float64)
    if not (ref.ndim == cur.ndim == 1 and ref.shape == xr.shape and cur.shape == xc.shape):
        raise ValueError("Each side needs one point per count, as 1-D arrays")
    points = np.concatenate((xr, xc))
    order = np.argsort(points, kind="stable")
    sorted_points = points[order]
    r = np.cumsum(np.concatenate((proportions(ref), np.zeros(cur.size)))[order])
    c = np.cumsum(np.concatenate((np.zeros(ref.size), proportions(cur)))[order])
    # Right-continuous values: the last of a run of equal points carries the CDF there.
    last = np.append(sorted_points[1:] != sorted_points[:-1], True)
    statistic = float(np.max(np.abs(r - c)[last], initial=0.0))
    n, m = float(ref.sum()), float(cur.sum())
    effective = n * m / (n + m) if n + m > 0 else 0.0
    return StatTestResult(
        np.array(statistic), kolmogorov_sf(np.sqrt(effective) * np.float64(statistic))
    )


def chi2(reference: npt.ArrayLike, current: npt.ArrayLike) -> StatTestResult:
    """Pearson's chi-squared test of homogeneity of the 2 x k table (reference, current).

    The null hypothesis is that both samples come from one distribution over the buckets:
    ``χ² = Σ_i (r_i·m - c_i·n)² / (n·m·(r_i + c_i))`` with ``n``, ``m`` the two totals,
    ``k' - 1`` degrees of freedom for the ``k'`` buckets non-empty on either side (an empty
    column has no expected count and carries no information), and no Yates correction. This
    equals ``scipy.stats.chi2_contingency(table, correction=False)`` and, for two buckets,
    the square of Evidently's two-proportion Z statistic with the same two-sided p-value.

    Evidently's own chi-squared test is a goodness-of-fit test of the current counts against
    the reference proportions taken as exact; alibi-detect's ``ChiSquareDrift`` uses the
    contingency test as here. The reference is a sample too, so the goodness-of-fit form
    flags ever smaller, sampling-noise differences as the window grows; see ``docs/drift.md``.
    """
    ref, cur = _pair(reference, current)
    n = ref.sum(axis=-1, keepdims=True)
    m = cur.sum(axis=-1, keepdims=True)
    column = ref + cur
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(column > 0, (ref * m - cur * n) ** 2 / (n * m * column), 0.0)
    valid = (n[..., 0] > 0) & (m[..., 0] > 0)
    statistic = np.where(valid, terms.sum(axis=-1), np.nan)
    dof = np.count_nonzero(column > 0, axis=-1) - 1
    flat_stat = statistic.reshape(-1)
    flat_dof = np.broadcast_to(dof, statistic.shape).reshape(-1)
    p_value = np.array(
        [chi2_sf(float(s), int(d)) for s, d in zip(flat_stat, flat_dof, strict=True)],
        dtype=np.float64,
    ).reshape(statistic.shape)
    return StatTestResult(statistic, p_value)
