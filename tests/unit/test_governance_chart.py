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


@pytest.mark.parametrize("tag", ["1.0", "0.1.0"])
def test_helm_test_pod_has_each_label_once(tag: str) -> None:
    out = run_helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--set",
        f"image.tag={tag}",
        "--show-only",
        "templates/tests/test-healthz.yaml",
    ).stdout
    # yaml.safe_load keeps the last of duplicate keys silently: count them in the text.
    assert out.count("app.kubernetes.io/component:") == 1
    (pod,) = [d for d in yaml.safe_load_all(out) if d]
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "test"
    assert labels["app.kubernetes.io/version"] == tag  # still a string after the merge
    assert labels["app.kubernetes.io/instance"] == RELEASE
