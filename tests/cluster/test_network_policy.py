"""The operator's NetworkPolicy (chart ``networkPolicy.enabled``, kustomize component
``manifests/components/network-policy``) is accepted by a real API server as rendered, in each
shape the values give it. The local control plane has no CNI, so nothing enforces it here:
what it allows is checked on the render (``tests/unit/test_chart_security.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster.kube import Cluster, get
from tests.unit.test_helm import one, render_chart

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

NS = "network-policy"

SHAPES = {
    "defaults": (),
    "narrowed": (
        "networkPolicy.apiServer.cidrs={10.96.0.1/32,fd00::1/128}",
        "networkPolicy.apiServer.ports={6443}",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
        "networkPolicy.extraEgress[0].to[0].ipBlock.cidr=192.0.2.0/24",
        "networkPolicy.extraEgress[0].ports[0].port=443",
        "networkPolicy.extraEgress[0].ports[0].protocol=TCP",
    ),
    "namespaced": ("watch.allNamespaces=false", "watch.namespaces={ml-a,ml-b}"),
}


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> Iterator[None]:
    cluster.kubectl("create", "namespace", NS)
    yield
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_api_server_accepts_the_rendered_policy(
    cluster: Cluster, namespace: None, shape: str
) -> None:
    policy = one(render_chart(sets=("networkPolicy.enabled=true", *SHAPES[shape])), "NetworkPolicy")
    policy["metadata"]["namespace"] = NS
    policy["metadata"]["name"] = f"modelops-{shape}"
    out = cluster.kubectl(
        "apply", "--server-side", "--field-manager=tests", "-f", "-", input=json.dumps(policy)
    )
    assert out.returncode == 0, out.stderr
    stored = get(cluster, "networkpolicy", f"modelops-{shape}", "-n", NS)
    assert stored is not None
    assert stored["spec"]["egress"] == policy["spec"]["egress"]
    assert stored["spec"]["ingress"] == policy["spec"]["ingress"]
