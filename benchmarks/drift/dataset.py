"""The benchmark's data: seeded reference and current windows with a known shift.

Every contender reads the same ``.npy`` files, written once per size by :func:`ensure` and
reused while their recipe (:data:`RECIPE`) is unchanged. Only numpy is needed here, so the
module also runs in the Evidently venv.

Each of the :data:`FEATURES` columns draws from one of four families, by column index modulo 4:
standard normal, log-normal (sigma 0.5), uniform on [0, 1) and gamma (shape 2, scale 1), so the
quantile edges differ in spacing and skew. In the current window, :data:`SHIFTED` columns (a
seeded choice) are moved by ``SHIFT_SIGMAS`` times their family's standard deviation; the others
come from the same distribution as the reference. That is the ground truth every verdict is
scored against.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FEATURES = 100
SHIFTED = 10
SHIFT_SIGMAS = 0.5
SEED = 20261128
RECIPE = "drift-bench-v1"
"""Changes whenever the generation below changes, so stale cached files are not reused."""

_FAMILIES = ("normal", "lognormal", "uniform", "gamma")
# Standard deviation of each family, so a shift is a known number of sigmas.
_STDS = {
    "normal": 1.0,
    "lognormal": math.sqrt((math.exp(0.25) - 1.0) * math.exp(0.25)),
    "uniform": 1.0 / math.sqrt(12.0),
    "gamma": math.sqrt(2.0),
}

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Meta:
    """What a data directory holds, as written to its ``meta.json``."""

    recipe: str
    seed: int
    rows: int
    features: int
    names: tuple[str, ...]
    families: tuple[str, ...]
    shifted: tuple[int, ...]
    shift_sigmas: float
    sha256: dict[str, str]

    @property
    def truth(self) -> tuple[bool, ...]:
        """Per feature: True if the current window was shifted (the ground truth)."""
        shifted = set(self.shifted)
        return tuple(j in shifted for j in range(self.features))


def feature_names(features: int = FEATURES) -> tuple[str, ...]:
    """Column names ``f000``, ``f001``…, the same in every contender."""
    return tuple(f"f{j:03d}" for j in range(features))


def shifted_features(seed: int = SEED) -> tuple[int, ...]:
    """The indices of the shifted columns: a seeded choice, sorted."""
    choice = np.random.default_rng([seed, 0]).choice(FEATURES, size=SHIFTED, replace=False)
    return tuple(sorted(int(j) for j in choice))


def _draw(family: str, rng: np.random.Generator, rows: int) -> FloatArray:
    if family == "normal":
        return rng.standard_normal(rows)
    if family == "lognormal":
        return rng.lognormal(0.0, 0.5, rows)
    if family == "uniform":
        return rng.random(rows)
    return rng.gamma(2.0, 1.0, rows)


def generate(rows: int, seed: int = SEED) -> tuple[FloatArray, FloatArray]:
    """Return ``(reference, current)``, each ``(rows, FEATURES)`` float64 in C order."""
    rng = np.random.default_rng([seed, rows])
    shifted = set(shifted_features(seed))
    reference = np.empty((rows, FEATURES))
    current = np.empty((rows, FEATURES))
    for j in range(FEATURES):
        family = _FAMILIES[j % len(_FAMILIES)]
        reference[:, j] = _draw(family, rng, rows)
        current[:, j] = _draw(family, rng, rows)
        if j in shifted:
            current[:, j] += SHIFT_SIGMAS * _STDS[family]
    return reference, current


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def read_meta(directory: Path) -> Meta:
    """Read ``meta.json`` of a data directory written by :func:`ensure`."""
    raw = json.loads((directory / "meta.json").read_text())
    return Meta(
        recipe=raw["recipe"],
        seed=raw["seed"],
        rows=raw["rows"],
        features=raw["features"],
        names=tuple(raw["names"]),
        families=tuple(raw["families"]),
        shifted=tuple(raw["shifted"]),
        shift_sigmas=raw["shift_sigmas"],
        sha256=dict(raw["sha256"]),
    )


def ensure(root: Path, rows: int, seed: int = SEED) -> Path:
    """Return the directory holding the data for ``rows``, generating it if absent or stale."""
    directory = root / f"{RECIPE}-seed{seed}-rows{rows}"
    try:
        meta = read_meta(directory)
    except (OSError, KeyError, ValueError):
        meta = None
    if meta is not None and meta.recipe == RECIPE:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    reference, current = generate(rows, seed)
    sha256 = {}
    for name, array in (("reference", reference), ("current", current)):
        path = directory / f"{name}.npy"
        np.save(path, array)
        sha256[name] = _sha256(path)
    meta_doc = {
        "recipe": RECIPE,
        "seed": seed,
        "rows": rows,
        "features": FEATURES,
        "names": list(feature_names()),
        "families": [_FAMILIES[j % len(_FAMILIES)] for j in range(FEATURES)],
        "shifted": list(shifted_features(seed)),
        "shift_sigmas": SHIFT_SIGMAS,
        "sha256": sha256,
    }
    # meta.json last: its presence marks a complete directory.
    (directory / "meta.json").write_text(json.dumps(meta_doc, indent=1))
    return directory


def load(directory: Path) -> tuple[FloatArray, FloatArray, Meta]:
    """Load ``(reference, current, meta)`` fully into memory (no memory mapping)."""
    reference = np.load(directory / "reference.npy")
    current = np.load(directory / "current.npy")
    return reference, current, read_meta(directory)
