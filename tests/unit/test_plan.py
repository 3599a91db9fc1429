"""``contains``: when a child or status already matches, the executor writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.core.plan import ObjectRef, contains, merge_patch


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),  # extra live keys (server defaults) are fine
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True),
        ({"l": [{"n": 1, "d": 0}, {"n": 2}]}, {"l": [{"n": 1}, {"n": 2}]}, True),
        ({"l": [{"n": 1}, {"n": 2}]}, {"l": [{"n": 1}]}, False),  # list length differs
        ({"l": [1, 2]}, {"l": [2, 1]}, False),  # order matters
        ({}, {"gone": None}, True),  # None asks for absence
        ({"gone": 1}, {"gone": None}, False),
        ({"a": "1"}, {"a": 1}, False),
        (None, {"a": 1}, False),
    ],
)
def test_contains(live: Any, desired: Any, expected: bool) -> None:
    assert contains(live, desired) is expected


def test_object_ref_of_wire_object() -> None:
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "n"}}
    ref = ObjectRef.of(obj)
    assert ref == ObjectRef("batch/v1", "Job", "n", "j")
    assert str(ref) == "Job n/j"


@pytest.mark.parametrize(
    ("live", "desired", "patch"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, {"a": {"x": 1, "y": None}}),
        ({}, {"a": [1]}, {"a": [1]}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": "s"}, {"a": {"x": 1}}, {"a": {"x": 1}}),
    ],
)
def test_merge_patch_removes_what_desired_lacks(live: Any, desired: Any, patch: Any) -> None:
    assert merge_patch(live, desired) == patch
