"""The fidelity benchmark's cases: real and synthetic tables, split, then shifted in known ways.

Only numpy is needed here, so the module also runs in the Evidently venv. A case is a
reference and a current window of one table plus the ground truth:

- **Tables** (:func:`tables`): the project's bundled iris (150 rows) and diabetes (442 rows,
  raw clinical values: integers, a 2-valued column), scikit-learn's bundled wine (178),
  breast cancer (569) and digits (1797 rows, 64 integer pixel columns, many nearly constant) —
  read from the Evidently venv, which has scikit-learn, when it exists — and a synthetic table
  of 6000 rows: normal, log-normal, uniform, gamma, two Poisson integer columns, a binary,
  a 4-valued and a zero-inflated column, all depending on a latent class.
- **Split**: a seeded random half is the reference, the other half the current window.
- **Shifts** (:data:`KINDS`), applied to a seeded 60% of the columns (so a detector that
  finds every shifted column calls dataset drift under the 50% rule), at three levels each:
  ``additive`` (+ level x column std), ``scale`` (x (1 + level)), ``dispersion`` (spread
  around the mean x (1 + level)), ``outliers`` (a share of values moved beyond the training
  maximum by 1-5 std), ``missing`` (a share of values set to NaN), and ``class-prior`` (the
  current window resampled so the rarest class's share grows by the level, at most to 0.95;
  it touches every column
  correlated with the class, so its per-column truth is left undefined). ``null`` cases are
  unshifted; ``null-missing`` have 5% NaN in both windows.
"""

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent.parent / "operator" / "modelops" / "datasets"

KINDS: dict[str, tuple[float, ...]] = {
    "null": (0.0,),
    "null-missing": (0.05,),
    "additive": (0.1, 0.25, 0.5),
    "scale": (0.05, 0.15, 0.3),
    "dispersion": (0.1, 0.25, 0.5),
    "outliers": (0.01, 0.03, 0.1),
    "missing": (0.05, 0.15, 0.3),
    "class-prior": (0.1, 0.25, 0.45),
}
"""Shift kind → levels (see the module docstring for what a level means per kind)."""

NULL_KINDS = frozenset({"null", "null-missing"})
SHIFTED_SHARE = 0.6
SYNTHETIC_ROWS = 6000
SKLEARN_TABLES = ("wine", "breast_cancer", "digits")


@dataclass(frozen=True)
class Table:
    """A table: numeric columns, their names and a class label per row."""

    name: str
    values: FloatArray
    names: tuple[str, ...]
    labels: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Case:
    """One comparison: reference and current windows plus the truth."""

    id: str
    table: str
    kind: str
    level: float
    seed: int
    reference: FloatArray
    current: FloatArray
    names: tuple[str, ...]
    shifted: tuple[bool, ...] | None
    """Per column, whether it was shifted; None for class-prior (every column may move)."""

    @property
    def drift(self) -> bool:
        """The dataset-level truth: every case but the null ones was shifted."""
        return self.kind not in NULL_KINDS


def _csv(path: Path, label: str) -> Table:
    header = path.read_text().splitlines()[0].split(",")
    columns = [name for name in header if name != label]
    rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line]
    index = header.index(label)
    raw_labels = [row[index] for row in rows]
    values = np.array([[float(v) for i, v in enumerate(row) if i != index] for row in rows])
    if all(_is_number(v) for v in raw_labels):
        target = np.array([float(v) for v in raw_labels])
        codes = (target > np.median(target)).astype(np.int64)
    else:
        _, codes = np.unique(raw_labels, return_inverse=True)
    return Table(path.stem, values, tuple(columns), codes.astype(np.int64))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def synthetic(rows: int = SYNTHETIC_ROWS, seed: int = 7) -> Table:
    """Mixed families, all moved a little by a latent class (30% of rows are class 1)."""
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.3).astype(np.int64)
    c = label.astype(np.float64)
    columns = {
        "normal": rng.normal(size=rows) + 0.5 * c,
        "lognormal": rng.lognormal(0.0, 0.5, size=rows) * (1 + 0.3 * c),
        "uniform": rng.uniform(size=rows) + 0.15 * c,
        "gamma": rng.gamma(2.0 + c, size=rows),
        "poisson4": rng.poisson(4 + 2 * c).astype(np.float64),
        "poisson30": rng.poisson(30 + 5 * c).astype(np.float64),
        "binary": (rng.random(rows) < 0.3 + 0.3 * c).astype(np.float64),
        "levels4": rng.choice(4, size=rows, p=[0.4, 0.3, 0.2, 0.1]).astype(np.float64) + c,
        "zero_inflated": np.where(rng.random(rows) < 0.8 - 0.3 * c, 0.0, rng.gamma(2.0, size=rows)),
        "normal2": rng.normal(size=rows) - 0.4 * c,
    }
    return Table("synthetic", np.column_stack(list(columns.values())), tuple(columns), label)


def sklearn_tables(python: Path | None, cache: Path) -> list[Table]:
    """scikit-learn's bundled tables, exported once by ``python`` (a venv with scikit-learn)."""
    path = cache / "sklearn-tables.npz"
    if not path.exists():
        if python is None or not python.exists():
            return []
        cache.mkdir(parents=True, exist_ok=True)
        script = (
            "import sys, numpy as np, sklearn.datasets as d\n"
            "out = {}\n"
            f"for name in {SKLEARN_TABLES!r}:\n"
            "    b = getattr(d, 'load_' + name)()\n"
            "    out[name + '.X'] = np.asarray(b.data, dtype=float)\n"
            "    out[name + '.y'] = np.asarray(b.target, dtype=np.int64)\n"
            "    out[name + '.names'] = np.array([str(n) for n in b.feature_names])\n"
            "np.savez(sys.argv[1], **out)\n"
        )
        subprocess.run([str(python), "-c", script, str(path)], check=True)
    data = np.load(path)
    return [
        Table(
            name, data[f"{name}.X"], tuple(str(n) for n in data[f"{name}.names"]), data[f"{name}.y"]
        )
        for name in SKLEARN_TABLES
    ]


def bundled() -> list[Table]:
    """The project's own datasets: iris and diabetes."""
    return [
        _csv(DATASETS / "iris.csv", "species"),
        _csv(DATASETS / "diabetes.csv", "progression"),
    ]


def tables(evidently_python: Path | None, cache: Path, *, synthetic_rows: int) -> list[Table]:
    """Every table of the benchmark that is available here."""
    return [*bundled(), *sklearn_tables(evidently_python, cache), synthetic(synthetic_rows)]


def shift(
    kind: str,
    level: float,
    current: FloatArray,
    reference: FloatArray,
    columns: FloatArray,
    rng: np.random.Generator,
) -> FloatArray:
    """``current`` with the ``columns`` (a boolean mask) shifted by ``kind`` at ``level``."""
    out = current.copy()
    std = reference.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    mean = reference.mean(axis=0)
    for j in np.flatnonzero(columns):
        x = out[:, j]
        if kind == "additive":
            x += level * std[j]
        elif kind == "scale":
            x *= 1.0 + level
        elif kind == "dispersion":
            x[:] = mean[j] + (x - mean[j]) * (1.0 + level)
        elif kind == "outliers":
            chosen = rng.random(x.size) < level
            x[chosen] = reference[:, j].max() + rng.uniform(1.0, 5.0, chosen.sum()) * std[j]
        elif kind == "missing":
            x[rng.random(x.size) < level] = np.nan
        else:
            raise ValueError(f"Unknown shift kind {kind}")
    return out


def make_case(table: Table, kind: str, level: float, seed: int) -> Case:
    """The case ``(table, kind, level, seed)``; the same arguments give the same arrays."""
    rng = np.random.default_rng(
        [seed, sum(map(ord, table.name)), sum(map(ord, kind)), int(level * 1000)]
    )
    rows = table.values.shape[0]
    order = rng.permutation(rows)
    half = rows // 2
    ref_rows, cur_rows = order[:half], order[half : 2 * half]
    reference = table.values[ref_rows].copy()
    width = reference.shape[1]
    shifted: tuple[bool, ...] | None = (False,) * width
    if kind == "class-prior":
        labels = table.labels[cur_rows]
        target = int(np.bincount(table.labels).argmin())  # the rarest class gains share
        is_target = labels == target
        share = min(0.95, float(is_target.mean()) + level)
        weights = np.where(is_target, share / is_target.sum(), (1.0 - share) / (~is_target).sum())
        picked = rng.choice(cur_rows, size=cur_rows.size, p=weights / weights.sum())
        current = table.values[picked].copy()
        shifted = None
    else:
        current = table.values[cur_rows].copy()
        if kind == "null-missing":
            reference[rng.random(reference.shape) < level] = np.nan
            current[rng.random(current.shape) < level] = np.nan
        elif kind != "null":
            chosen = np.zeros(width, dtype=bool)
            chosen[rng.choice(width, size=int(np.ceil(SHIFTED_SHARE * width)), replace=False)] = (
                True
            )
            current = shift(kind, level, current, reference, chosen, rng)
            shifted = tuple(bool(c) for c in chosen)
    case_id = f"{table.name}/{kind}/{level:g}/{seed}"
    return Case(case_id, table.name, kind, level, seed, reference, current, table.names, shifted)


def all_cases(tables: list[Table], seeds: int, null_seeds: int) -> Iterator[Case]:
    """Every case: each table x kind x level x seed (``null_seeds`` for the null kinds)."""
    for table in tables:
        for kind, levels in KINDS.items():
            for level in levels:
                for seed in range(null_seeds if kind in NULL_KINDS else seeds):
                    yield make_case(table, kind, level, seed)


def write(cases: list[Case], directory: Path) -> Path:
    """Write the cases for the Evidently process: one ``.npz`` per case and an index."""
    directory.mkdir(parents=True, exist_ok=True)
    index = []
    for number, case in enumerate(cases):
        path = directory / f"case-{number:05d}.npz"
        np.savez(path, reference=case.reference, current=case.current)
        index.append({"id": case.id, "file": path.name, "names": list(case.names)})
    (directory / "index.json").write_text(json.dumps(index))
    return directory / "index.json"
