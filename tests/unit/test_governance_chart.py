"""The chart's governance pieces, rendered offline: the approval-record admission policies and
the ``helm test`` pod. The policies' behaviour is tested on a real API server in
``tests/cluster/test_governance.py``."""

from __future__ import annotations

import pytest
import yaml

from tests.unit.test_helm import CHART, NAMESPACE, RELEASE, Obj, find, one, render_chart, run_helm


def render(*args: str) -> list[Obj]:
    out = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_the_approval_record_is_stamped_and_guarded_by_default() -> None:
    objs = render_chart()
    mutation = one(objs, "MutatingAdmissionPolicy", "modelops-approval-record")
    (applied,) = mutation["spec"]["mutations"]
    assert "request.userInfo.username" in applied["applyConfiguration"]["expression"]
    binding = one(objs, "MutatingAdmissionPolicyBinding", "modelops-approval-record")
    assert binding["spec"]["policyName"] == "modelops-approval-record"
    one(objs, "ValidatingAdmissionPolicy", "modelops-approval-record")


@pytest.mark.parametrize("kube", ["1.30.0", "1.35.4"])
def test_no_mutating_policy_before_kubernetes_1_36(kube: str) -> None:
    # admissionregistration.k8s.io/v1 MutatingAdmissionPolicy is served from 1.36 on; older
    # clusters still get the guard against forged records.
    objs = render("--kube-version", kube)
    assert not find(objs, "MutatingAdmissionPolicy")
    assert not find(objs, "MutatingAdmissionPolicyBinding")
    one(objs, "ValidatingAdmissionPolicy", "modelops-approval-record")


def test_admission_policy_disabled_leaves_out_the_approval_policies() -> None:
    objs = render_chart(sets=("admissionPolicy.enabled=false",))
    for kind in ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"):
        assert not find(objs, kind)
