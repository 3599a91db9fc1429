"""The retire program: marker first, files deleted only on request, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelops.runtimes.server.retire import main, retire

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def artifact(tmp_path: Path) -> Path:
    d = tmp_path / "iris" / "iris-1"
    d.mkdir(parents=True)
    for name in ("model.json", "reference.json", "manifest.json"):
        (d / name).write_text("{}")
    return d


def test_marks_without_deleting_by_default(tmp_path: Path) -> None:
    d = artifact(tmp_path)
    assert retire(d, "1", "keepLast=3", delete_artifacts=False, now=NOW) == []
    assert sorted(p.name for p in d.iterdir()) == [
        "RETIRED",
        "manifest.json",
        "model.json",
        "reference.json",
    ]
    assert "keepLast=3" in (d / "RETIRED").read_text()


def test_delete_artifacts_keeps_the_marker_as_record(tmp_path: Path) -> None:
    d = artifact(tmp_path)
    deleted = retire(d, "1", "maxAge", delete_artifacts=True, now=NOW)
    assert deleted == ["manifest.json", "model.json", "reference.json"]
    assert [p.name for p in d.iterdir()] == ["RETIRED"]
    assert "deleted" in (d / "RETIRED").read_text()
    assert retire(d, "1", "maxAge", delete_artifacts=True, now=NOW) == []  # idempotent


def test_missing_directory_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--dir", str(tmp_path / "nope"), "--version", "1", "--reason", "x"])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
