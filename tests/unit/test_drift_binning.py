"""bin_counts: vectorised binning with the `le` semantics of reference.json."""

import numpy as np
import pytest

from modelops.core.drift import bin_counts


def naive(values: np.ndarray, edges: list[np.ndarray]) -> list[np.ndarray]:
    """One column at a time, straight from the bucket definition in docs/contracts.md."""
    result = []
    for j, e in enumerate(edges):
        counts = np.zeros(len(e) + 1, dtype=np.int64)
        for v in values[:, j]:
            if np.isnan(v):
                continue
            bucket = 0
            while bucket < len(e) and v > e[bucket]:
                bucket += 1
            counts[bucket] += 1
        result.append(counts)
    return result


@pytest.fixture
def ragged() -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(9000, 6))
    values[rng.random(values.shape) < 0.01] = np.nan
    values[::97, 1] = np.inf
    values[::89, 2] = -np.inf
    # Values exactly on edges exercise `<=`: rounding puts many of them there.
    values[:, 3] = np.round(values[:, 3], 1)
    edges = [
        np.quantile(values[:1000, 0][~np.isnan(values[:1000, 0])], np.linspace(0.1, 0.9, 9)),
        np.array([0.0]),
        np.array([-1.0, 1.0]),
        np.round(np.linspace(-2.0, 2.0, 41), 1),
        np.array([-0.5, 0.0, 0.5, 3.0]),
        np.linspace(-3, 3, 7),
    ]
    return values, edges


def test_matches_naive_loop(ragged: tuple[np.ndarray, list[np.ndarray]]) -> None:
    values, edges = ragged
    expected = naive(values, edges)
    for got, want in zip(bin_counts(values, edges), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_memory_layout_does_not_matter(ragged: tuple[np.ndarray, list[np.ndarray]]) -> None:
    values, edges = ragged
    c_order = bin_counts(np.ascontiguousarray(values), edges)
    f_order = bin_counts(np.asfortranarray(values), edges)
    strided = bin_counts(np.ascontiguousarray(values[:, ::-1])[:, ::-1], edges)
    for a, b, c in zip(c_order, f_order, strided, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_le_semantics_and_missing_values() -> None:
    values = np.array([[-np.inf], [1.0], [1.5], [2.0], [2.0000001], [np.nan], [np.inf]])
    (counts,) = bin_counts(values, [np.array([1.0, 2.0])])
    # <= 1 | (1, 2] | > 2 ; NaN is not counted anywhere.
    np.testing.assert_array_equal(counts, [2, 2, 2])
    assert counts.dtype == np.int64


def test_integer_input_and_empty_rows() -> None:
    (counts,) = bin_counts(np.array([[1], [2], [3]]), [np.array([2.0])])
    np.testing.assert_array_equal(counts, [2, 1])
    (empty,) = bin_counts(np.empty((0, 1)), [np.array([0.0, 1.0])])
    np.testing.assert_array_equal(empty, [0, 0, 0])
    assert bin_counts(np.empty((5, 0)), []) == []


@pytest.mark.parametrize(
    ("values", "edges", "message"),
    [
        (np.zeros(3), [np.array([0.0])], "2-D"),
        (np.zeros((3, 2)), [np.array([0.0])], "edge arrays"),
        (np.zeros((3, 1)), [np.array([1.0, 1.0])], "strictly increasing"),
        (np.zeros((3, 1)), [np.array([])], "non-empty"),
        (np.zeros((3, 1)), [np.array([0.0, np.inf])], "finite"),
    ],
)
def test_rejects_bad_input(values: np.ndarray, edges: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bin_counts(values, edges)
