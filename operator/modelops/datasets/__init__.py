"""Small real datasets shipped with modelops, for examples, demos and tests.

Each `<name>.csv` comes with `<name>.schema.json`, the schema to validate it with. See
`README.md` in this directory for provenance and licences.
"""

from pathlib import Path

DIRECTORY = Path(__file__).parent


def path(name: str) -> Path:
    """The path of a bundled file, e.g. `path("iris.csv")`. Raises `FileNotFoundError`."""
    candidate = DIRECTORY / name
    if not candidate.is_file():
        available = ", ".join(sorted(p.name for p in DIRECTORY.glob("*.*") if p.suffix != ".py"))
        raise FileNotFoundError(f"no bundled dataset file {name!r}; available: {available}")
    return candidate
