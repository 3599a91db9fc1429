"""``contains``: when a child or status already matches, the executor writes nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from modelops.core.plan import ObjectRef, contains, merge_patch, quantity


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


def test_resource_quantities_compare_by_value() -> None:
    """Regression (issue 11.8): the API server returns ``cpu: "0.5"`` as ``500m``; a textual
    compare re-applied every serving Deployment on every reconcile."""
    live = {
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": "img:1",
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "512Mi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                }
            ]
        }
    }
    same = {
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": "img:1",
                    "resources": {
                        "requests": {"cpu": "0.5", "memory": "0.5Gi"},
                        "limits": {"cpu": "1000m", "memory": "1024Mi"},
                    },
                }
            ]
        }
    }
    assert contains(live, same)
    more = json.loads(json.dumps(same))
    more["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "0.6"
    assert not contains(live, more)


def test_quantity_equality_is_only_for_resources() -> None:
    # An image tag "1.0" is not the tag "1": only resource quantities compare by value.
    assert not contains({"image": "1"}, {"image": "1.0"})
    assert not contains({"labels": {"v": "1k"}}, {"labels": {"v": "1000"}})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        ("1Gi", Decimal(2**30)),
        ("1e3", Decimal(1000)),
        ("2k", Decimal(2000)),
        (".5", Decimal("0.5")),
        ("lots", None),
    ],
)
def test_quantity(text: str, value: Decimal | None) -> None:
    assert quantity(text) == value
