"""Fixtures shared by the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.kube import Sink


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    """A CloudEvents receiver on loopback, one per test module."""
    s = Sink()
    yield s
    s.close()
