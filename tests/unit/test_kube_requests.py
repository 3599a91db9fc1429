"""How the operator's client names its requests in ``modelops_api_requests_total``."""

from __future__ import annotations

import pytest

from modelops.k8s.client import _describe


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/namespaces/ml/pods", ("list", "pods")),
        ("GET", "/apis/batch/v1/namespaces/ml/jobs/iris-1", ("get", "jobs")),
        (
            "POST",
            "/apis/modelops.dev/v1alpha1/namespaces/ml/modelversions",
            ("create", "modelversions"),
        ),
        (
            "PATCH",
            "/apis/modelops.dev/v1alpha1/namespaces/ml/models/iris/status",
            ("patch", "models/status"),
        ),
        ("DELETE", "/apis/apps/v1/namespaces/ml/deployments/iris-1", ("delete", "deployments")),
    ],
)
def test_requests_are_counted_as_rbac_names_them(
    method: str, path: str, expected: tuple[str, str]
) -> None:
    assert _describe(method, path) == expected
