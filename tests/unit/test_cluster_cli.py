"""``python -m harness.cluster``'s arguments (``make cluster-load IMAGES=…``): images go to
``load`` and only to it, refused before anything is started or read. No cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cluster import main


@pytest.mark.parametrize(
    "argv",
    [
        ["load"],  # `make cluster-load` without IMAGES
        ["up", "ghcr.io/modelops/server:0.1.0"],
        ["down", "ghcr.io/modelops/server:0.1.0"],
    ],
)
def test_images_go_to_load_and_only_to_it(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        # No binaries: were the arguments let through, `up` would fail fast, not start a cluster.
        main([*argv, "--state-dir", str(tmp_path / "state"), "--bin-dir", str(tmp_path / "bin")])
    assert exited.value.code == 2
    assert "images are given to `load`, and only to it" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
