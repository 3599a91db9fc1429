"""Drift collection and its reconciler: the server's /metrics, serving pods, HTTP sources.

The /metrics pages are produced by the real server's metrics code (``ServerMetrics``) fed
with known values, so a change to the server's exposition breaks these tests. HTTP sources
(pods, Prometheus) are real HTTP servers on 127.0.0.1 started per test; the API server is a
small in-memory stand-in answering ``get`` and ``list`` from a dict, because collection only
reads.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modelops import api
from modelops.api import artifact as contract
from modelops.core import driftpolicy as dp
from modelops.core.drift import bin_counts, parse_reference
from modelops.core.plan import EventSpec, ObjectRef
from modelops.handlers.deps import Deps
from modelops.handlers.driftpolicy import reconcile_driftpolicy
from modelops.handlers.reconcile import GONE
from modelops.handlers.workqueue import Key, WorkQueue
from modelops.k8s import scrape
from modelops.k8s.client import Kube
from modelops.notify import Notifier
from modelops.observability import OperatorMetrics
from modelops.runtimes.server.metrics import ServerMetrics
from modelops.settings import OperatorSettings

REFERENCE: dict[str, Any] = {
    "rows": 100,
    "features": [
        {
            "name": "sepal_length",
            "type": "numeric",
            "binEdges": [4.3, 5.0, 5.8, 6.4, 7.9],
            "counts": [1, 30, 30, 20, 19, 0],
        },
        {
            "name": "colour",
            "type": "categorical",
            "categories": ["red", "blue"],
            "counts": [60, 40],
        },
    ],
}
LENGTHS = np.array([4.3, 4.9, 5.0, 5.1, 6.0, 6.4, 6.5, 7.9, 8.5, 3.0, 5.8])
COLOURS = np.array(["red", "red", "blue", "green", "red", "blue", "red", "red", "x", "red", "blue"])


def server_page(model: str = "iris", version: str = "v3", *, rows: int = 1) -> str:
    """A /metrics page of the real server after ``rows`` requests of the values above."""
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, model=model, version=version)
    metrics.loaded(contract.ReferenceStats.model_validate(REFERENCE), ["sepal_length", "colour"])
    for _ in range(rows):
        metrics.features.observe({"sepal_length": LENGTHS, "colour": COLOURS.astype(object)})
    metrics.observe_request("infer", 200, 0.001)
    return generate_latest(registry).decode()


# -- parsing ---------------------------------------------------------------------------------


def test_the_servers_page_parses_into_the_reference_buckets() -> None:
    series = scrape.parse_metrics(server_page(rows=2), "iris", "v3")
    counts = dp.series_counts(series, parse_reference(REFERENCE))
    edges = np.array(REFERENCE["features"][0]["binEdges"])
    (expected,) = bin_counts(LENGTHS.reshape(-1, 1), [edges])
    # The buckets, no missing value, then 2 x 1.3 below 4.3 (3.0) and 2 x 0.6 above 7.9 (8.5).
    # The offset sums v - 4.3 over the values above 4.3, twice.
    offset = 2 * float(np.sum(LENGTHS[LENGTHS > 4.3] - 4.3))
    assert counts["sepal_length"].tolist() == pytest.approx(
        [*(2 * expected), 0.0, 2.6, 1.2, offset]
    )
    # red, blue, then values outside the reference categories, then missing ones.
    assert counts["colour"].tolist() == [12.0, 6.0, 4.0, 0.0]


def test_missing_values_are_counted_apart_from_the_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, model="iris", version="v3")
    metrics.loaded(contract.ReferenceStats.model_validate(REFERENCE), ["sepal_length", "colour"])
    lengths = np.array([np.nan, 5.5, np.nan, np.inf, 2.0])
    colours = np.array(["", "red", "x", "", "blue"], dtype=object)
    metrics.features.observe({"sepal_length": lengths, "colour": colours})
    series = scrape.parse_metrics(generate_latest(registry).decode(), "iris", "v3")
    counts = dp.series_counts(series, parse_reference(REFERENCE))
    # 2.0 is below the first edge (distance 2.3), 5.5 inside, +inf in the last bucket without a
    # distance; the two NaN count as missing only.
    assert counts["sepal_length"].tolist() == pytest.approx([1, 0, 1, 0, 0, 1, 2, 2.3, 0, 1.2])
    assert counts["colour"].tolist() == [1.0, 1.0, 1.0, 2.0]


def test_le_bounds_parse_back_to_the_exact_reference_edges() -> None:
    series = scrape.parse_metrics(server_page(), "iris", "v3")
    assert sorted(series.buckets["sepal_length"]) == [4.3, 5.0, 5.8, 6.4, 7.9, math.inf]
    assert set(series.categories["colour"]) == {"red", "blue", "__other__"}


def test_series_of_another_model_or_version_are_ignored() -> None:
    page = server_page("iris", "v2") + server_page("wine", "v3").split("# HELP", 1)[0]
    series = scrape.parse_metrics(page, "iris", "v3")
    assert series == dp.FeatureSeries(buckets={}, categories={})


def test_an_unparseable_page_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="could not convert"):
        scrape.parse_metrics("modelops_server_feature_value_bucket{ broken", "iris", "v3")


# -- serving pods ------------------------------------------------------------------------------


@dataclass
class FakeKube:
    """Answers ``get`` and ``list`` from ``objects``; records every list call's labels."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    lists: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return next(
            (
                o
                for o in self.objects
                if (o["apiVersion"], o["kind"]) == (api_version, kind)
                and o["metadata"]["namespace"] == namespace
                and o["metadata"]["name"] == name
            ),
            None,
        )

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        labels: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        self.lists.append((kind, dict(labels or {})))
        return [
            o
            for o in self.objects
            if (o["apiVersion"], o["kind"]) == (api_version, kind)
            and o["metadata"]["namespace"] == namespace
            and all(o["metadata"].get("labels", {}).get(k) == v for k, v in (labels or {}).items())
        ]

    def as_kube(self) -> Kube:
        return cast(Kube, self)


def serving_pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    version: str = "v3",
    port: int | None = 8080,
    deleting: bool = False,
    started: str | None = "2026-11-28T11:00:00Z",
) -> dict[str, Any]:
    """A pod of the version's Deployment, as the API server returns it."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ml",
        "labels": {
            "modelops.dev/model": "iris",
            "modelops.dev/version": version,
            "app.kubernetes.io/component": "model-server",
        },
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-28T11:59:00Z"
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    if started:
        status["startTime"] = started
    ports = [{"name": "http", "containerPort": port}] if port else []
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "sidecar"}, {"name": "server", "ports": ports}]},
        "status": status,
    }


def test_ready_pods_are_the_versions_ready_running_pods() -> None:
    kube = FakeKube(
        [
            serving_pod("p2", "127.0.0.3", port=9000),
            serving_pod("p1", "127.0.0.2", started=None),
            serving_pod("p3", "127.0.0.4", ready=False),
            serving_pod("p4", None),  # scheduled, no address yet
            serving_pod("p5", "127.0.0.5", deleting=True),
            serving_pod("p6", "127.0.0.6", version="v2"),
            serving_pod("p7", "::1", port=None),
        ]
    )
    endpoints = scrape.ready_pods(kube.as_kube(), "ml", "iris", "v3")
    started = datetime(2026, 11, 28, 11, tzinfo=UTC).timestamp()
    assert endpoints == [
        scrape.Endpoint("p1", "127.0.0.2", 8080, None),
        scrape.Endpoint("p2", "127.0.0.3", 9000, started),
        scrape.Endpoint("p7", "::1", 8080, started),
    ]
    assert endpoints[2].base_url == "http://[::1]:8080"
    selector = {
        "modelops.dev/model": "iris",
        "modelops.dev/version": "v3",
        "app.kubernetes.io/component": "model-server",
    }
    assert kube.lists == [("Pod", selector)]


# -- HTTP sources ----------------------------------------------------------------------------

Route = Callable[[str], tuple[int, str, bytes]]


@dataclass
class Http:
    """A local HTTP server answering GETs through ``route(path) -> (status, type, body)``."""

    server: ThreadingHTTPServer
    paths: list[str]
    release: threading.Event

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, pod: str = "p1", started_at: float | None = None) -> scrape.Endpoint:
        return scrape.Endpoint(pod, "127.0.0.1", self.port, started_at)


@pytest.fixture
def http() -> Iterator[Callable[[Route], Http]]:
    started: list[Http] = []

    def start(route: Route) -> Http:
        paths: list[str] = []
        release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                status, content_type, body = route(self.path)
                if status == 0:  # hang until the test is over: a pod that never answers
                    release.wait(10)
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        started.append(Http(server, paths, release))
        return started[-1]

    yield start
    for h in started:
        h.release.set()
        h.server.shutdown()
        h.server.server_close()


def pod_route(page: str | None = None, *, reference: bool = True) -> Route:
    body = (page or server_page()).encode()

    def route(path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", body
        if path == "/v2/models/iris/versions/v3/reference" and reference:
            return 200, "application/json", json.dumps(REFERENCE).encode()
        return 404, "application/json", b'{"error": "Not Found"}'

    return route


def test_scrape_pods_reads_every_pod_and_names_the_failures(
    http: Callable[[Route], Http],
) -> None:
    good = http(pod_route())
    broken = http(lambda _: (500, "text/plain", b"oops"))
    hanging = http(lambda _: (0, "", b""))
    pods, errors = scrape.scrape_pods(
        [good.endpoint("p1", 1000.0), broken.endpoint("p2"), hanging.endpoint("p3")],
        "iris",
        "v3",
        timeout=0.5,
    )
    assert set(pods) == {"p1"}
    assert pods["p1"].started_at == 1000.0
    assert pods["p1"].series == scrape.parse_metrics(server_page(), "iris", "v3")
    assert errors["p2"] == f"GET {broken.url}/metrics: HTTP 500 Internal Server Error: oops"
    assert errors["p3"].startswith(f"GET {hanging.url}/metrics: ")
    assert "timed out" in errors["p3"]


def test_an_unparseable_page_is_that_pods_error(http: Callable[[Route], Http]) -> None:
    pod = http(lambda _: (200, "text/plain", b"modelops_server_feature_value_bucket{ broken"))
    pods, errors = scrape.scrape_pods([pod.endpoint()], "iris", "v3", timeout=2)
    assert pods == {}
    assert errors["p1"].startswith("unparseable /metrics: ")


def test_the_reference_comes_from_the_first_pod_that_serves_it(
    http: Callable[[Route], Http],
) -> None:
    old_server = http(pod_route(reference=False))
    new_server = http(pod_route())
    endpoints = [old_server.endpoint("p1"), new_server.endpoint("p2")]
    assert scrape.fetch_reference(endpoints, "iris", "v3", timeout=2) == REFERENCE
    with pytest.raises(scrape.SourceError) as info:
        scrape.fetch_reference(endpoints[:1], "iris", "v3", timeout=2)
    assert str(info.value) == (
        "The model server of version v3 did not give its reference statistics: "
        f"GET {old_server.url}/v2/models/iris/versions/v3/reference: HTTP 404 Not Found: "
        '{"error": "Not Found"}'
    )


def test_feature_queries_sum_the_window_increase_over_pods() -> None:
    buckets, categories, missing, out_of_range, offset, exact, below = scrape.feature_queries(
        "iris", "v3", 600, {"cluster": 'eu-"1"'}
    )
    selector = 'cluster="eu-\\"1\\"",model="iris",version="v3"'
    assert buckets == (
        f"sum by (feature, le) (increase(modelops_server_feature_value_bucket{{{selector}}}"
        "[600000ms]))"
    )
    assert categories == (
        "sum by (feature, category) (increase(modelops_server_feature_category_total"
        f"{{{selector}}}[600000ms]))"
    )
    assert missing == (
        f"sum by (feature) (increase(modelops_server_feature_missing_total{{{selector}}}"
        "[600000ms]))"
    )
    assert out_of_range == (
        "sum by (feature, side) (increase(modelops_server_feature_out_of_range_total"
        f"{{{selector}}}[600000ms]))"
    )
    assert offset == (
        f"sum by (feature) (increase(modelops_server_feature_offset_total{{{selector}}}[600000ms]))"
    )
    assert exact == (
        "sum by (feature, le) (increase(modelops_server_feature_exact_total"
        f"{{{selector}}}[600000ms]))"
    )
    assert below == (
        "sum by (feature, le) (increase(modelops_server_feature_below_value_total"
        f"{{{selector}}}[600000ms]))"
    )
    with pytest.raises(ValueError, match="'bad-name' is not a Prometheus label name"):
        scrape.feature_queries("iris", "v3", 600, {"bad-name": "x"})


def prometheus_route(answers: dict[str, list[dict[str, Any]]]) -> Route:
    def route(path: str) -> tuple[int, str, bytes]:
        parsed = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(parsed.query)["query"][0]
        kinds = ("bucket", "category", "missing", "out_of_range", "offset", "exact", "below_value")
        kind = next(k for k in kinds if f"_{k}" in query)
        result = [
            {"metric": m, "value": [1764331200.0, str(v)]}
            for m, v in ((a["metric"], a["value"]) for a in answers.get(kind, []))
        ]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, "application/json", json.dumps(body).encode()

    return route


def test_prometheus_answers_become_window_series(http: Callable[[Route], Http]) -> None:
    prom = http(
        prometheus_route(
            {
                "bucket": [
                    {"metric": {"feature": "sepal_length", "le": le}, "value": v}
                    for le, v in [("4.3", 1), ("5.0", 3), ("5.8", 4), ("6.4", 6), ("7.9", 8)]
                ]
                + [{"metric": {"feature": "sepal_length", "le": "+Inf"}, "value": 9.5}],
                "missing": [{"metric": {"feature": "sepal_length"}, "value": 3}],
                "out_of_range": [
                    {"metric": {"feature": "sepal_length", "side": "above"}, "value": 0.75}
                ],
                "category": [
                    {"metric": {"feature": "colour", "category": "red"}, "value": 2},
                    {"metric": {"feature": "colour", "category": "__other__"}, "value": "NaN"},
                ],
            }
        )
    )
    series = scrape.query_prometheus(prom.url + "/", "iris", "v3", 600, extra_labels={}, timeout=2)
    assert series.buckets["sepal_length"][math.inf] == 9.5
    assert series.categories == {"colour": {"red": 2.0}}  # NaN (no data) is left out
    assert all(p.startswith("/api/v1/query?query=sum+by+") for p in prom.paths)
    counts = dp.series_counts(series, parse_reference(REFERENCE))
    assert counts["sepal_length"].tolist() == [1.0, 2.0, 1.0, 2.0, 2.0, 1.5, 3.0, 0.0, 0.75, 0.0]


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            lambda _: (400, "application/json", b'{"status":"error","error":"parse error"}'),
            'HTTP 400 Bad Request: {"status":"error","error":"parse error"}',
        ),
        (
            lambda _: (
                200,
                "application/json",
                b'{"status":"success","data":{"resultType":"matrix","result":[]}}',
            ),
            "with a matrix",
        ),
        (lambda _: (200, "application/json", b"[1, 2]"), "with an unreadable document"),
    ],
)
def test_a_failing_prometheus_is_a_source_error(
    http: Callable[[Route], Http], route: Route, message: str
) -> None:
    prom = http(route)
    with pytest.raises(scrape.SourceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        scrape.query_prometheus(prom.url, "iris", "v3", 600, extra_labels={}, timeout=2)


# -- collect() -------------------------------------------------------------------------------


def policy(**spec: Any) -> api.DriftPolicy:
    return api.DriftPolicy.model_validate(
        {
            "metadata": {"name": "iris-drift", "namespace": "ml", "generation": 1},
            "spec": {"modelRef": {"name": "iris"}, **spec},
        }
    )


def cluster_objects(port: int, *, with_version: bool = True) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris", "namespace": "ml", "uid": "m"},
            "spec": {},
            "status": {"productionVersion": "v3"},
        },
        serving_pod("iris-v3-abc", "127.0.0.1", port=port),
    ]
    if with_version:
        objects.append(
            {
                "apiVersion": "modelops.dev/v1alpha1",
                "kind": "ModelVersion",
                "metadata": {"name": "iris-v3", "namespace": "ml", "uid": "mv"},
                "spec": {
                    "modelRef": {"name": "iris"},
                    "version": "v3",
                    "artifact": {
                        "uri": "pvc://models/iris/v3",
                        "digest": "sha256:" + "ab" * 32,
                        "format": "modelops-linear/v1",
                    },
                    "referenceStats": "pvc://models/iris/v3/reference.json",
                },
            }
        )
    return objects


def test_collect_scrapes_the_watched_versions_pods(http: Callable[[Route], Http]) -> None:
    pod = http(pod_route())
    kube = FakeKube(cluster_objects(pod.port))
    cache = scrape.ReferenceCache()
    collected = scrape.collect(kube.as_kube(), policy(), cache, timeout=2)
    assert collected.problem is None
    assert collected.version == "v3"
    assert collected.reference == REFERENCE
    assert collected.pods is not None
    assert set(collected.pods) == {"iris-v3-abc"}
    assert (
        collected.pods["iris-v3-abc"].started_at
        == datetime(2026, 11, 28, 11, tzinfo=UTC).timestamp()
    )
    assert collected.runs == ()  # retraining is off: TrainingRuns are not even listed
    assert "TrainingRun" not in [kind for kind, _ in kube.lists]
    # The reference is fetched once per version.
    scrape.collect(kube.as_kube(), policy(), cache, timeout=2)
    assert pod.paths.count("/v2/models/iris/versions/v3/reference") == 1
    assert pod.paths.count("/metrics") == 2


def test_collect_lists_the_policys_retrain_runs(http: Callable[[Route], Http]) -> None:
    pod = http(pod_route())
    kube = FakeKube(cluster_objects(pod.port))
    scrape.collect(
        kube.as_kube(), policy(actions={"retrain": {}}), scrape.ReferenceCache(), timeout=2
    )
    assert ("TrainingRun", {"modelops.dev/driftpolicy": "iris-drift"}) in kube.lists


def test_collect_stops_where_the_chain_breaks(http: Callable[[Route], Http]) -> None:
    pod = http(pod_route(reference=False))
    objects = cluster_objects(pod.port, with_version=False)
    collected = scrape.collect(FakeKube([]).as_kube(), policy(), scrape.ReferenceCache())
    assert (collected.model, collected.version, collected.problem) == (None, None, None)
    collected = scrape.collect(FakeKube(objects).as_kube(), policy(), scrape.ReferenceCache())
    assert collected.version == "v3"
    assert collected.model_version is None
    assert collected.problem is None  # the decision reports the missing version
    collected = scrape.collect(
        FakeKube(cluster_objects(pod.port)).as_kube(), policy(), scrape.ReferenceCache(), timeout=2
    )
    assert collected.problem is not None
    assert collected.problem.reason == dp.REFERENCE_UNAVAILABLE
    assert "HTTP 404" in collected.problem.message


def test_collect_without_ready_pods(http: Callable[[Route], Http]) -> None:
    objects = [o for o in cluster_objects(1) if o["kind"] != "Pod"]
    collected = scrape.collect(FakeKube(objects).as_kube(), policy(), scrape.ReferenceCache())
    assert collected.problem == dp.Problem(
        dp.NO_READY_PODS, "No ready pod serves version v3 of Model iris (Service iris-v3)"
    )


def test_collect_with_every_pod_failing(http: Callable[[Route], Http]) -> None:
    def route(path: str) -> tuple[int, str, bytes]:
        if path.endswith("/reference"):
            return 200, "application/json", json.dumps(REFERENCE).encode()
        return 503, "text/plain", b""

    pod = http(route)
    collected = scrape.collect(
        FakeKube(cluster_objects(pod.port)).as_kube(), policy(), scrape.ReferenceCache(), timeout=2
    )
    assert collected.problem is not None
    assert collected.problem.reason == dp.SCRAPE_FAILED
    assert collected.problem.message == (
        "No ready pod of version v3 could be scraped: "
        f"iris-v3-abc: GET {pod.url}/metrics: HTTP 503 Service Unavailable"
    )


def test_collect_from_prometheus(http: Callable[[Route], Http]) -> None:
    pod = http(pod_route())
    prom = http(prometheus_route({"bucket": [], "category": []}))
    collected = scrape.collect(
        FakeKube(cluster_objects(pod.port)).as_kube(),
        policy(source={"prometheus": {"url": prom.url, "labels": {"cluster": "eu-1"}}}),
        scrape.ReferenceCache(),
        timeout=2,
    )
    assert collected.problem is None
    assert collected.series == dp.FeatureSeries(buckets={}, categories={})
    assert collected.pods is None
    assert "/metrics" not in pod.paths
    assert all("cluster%3D%22eu-1%22" in p for p in prom.paths)


# -- the reconciler: collect, window, decide, write, export ----------------------------------


@dataclass
class WritableKube(FakeKube):
    """``FakeKube`` that also takes the writes a drift reconcile makes."""

    events: list[str] = field(default_factory=list)

    def patch_status(
        self, ref: ObjectRef, status: dict[str, Any], *, resource_version: str | None = None
    ) -> dict[str, Any]:
        obj = self.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        assert obj is not None
        obj["status"] = merge(obj.get("status", {}), status)
        return obj

    def create(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.objects.append(manifest)
        return manifest, True

    def post_event(self, regarding: dict[str, Any], event: EventSpec, now: datetime) -> None:
        self.events.append(event.reason)

    def delete_all(self, kind: str) -> None:
        self.objects = [o for o in self.objects if o["kind"] != kind]


def merge(live: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    out = dict(live) if isinstance(live, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def exported(metrics: OperatorMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_the_reconciler_runs_the_drift_loop(http: Callable[[Route], Http]) -> None:
    registry = CollectorRegistry()
    server = ServerMetrics(registry, model="iris", version="v3")
    server.loaded(contract.ReferenceStats.model_validate(REFERENCE), ["sepal_length", "colour"])
    pod = http(
        lambda path: pod_route(generate_latest(registry).decode())(path)  # the live page
    )
    kube = WritableKube(cluster_objects(pod.port))
    kube.objects.append(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "iris-drift", "namespace": "ml", "generation": 1},
            "spec": {"modelRef": {"name": "iris"}, "interval": "60s", "consecutiveWindows": 2},
        }
    )
    now = [datetime(2026, 11, 28, 12, tzinfo=UTC)]
    metrics = OperatorMetrics.create()
    deps = Deps(
        settings=OperatorSettings(),
        kube=kube.as_kube(),
        metrics=metrics,
        queue=cast(WorkQueue, None),
        notifier=cast(Notifier, None),
        clock=lambda: now[0],
    )
    key = Key("DriftPolicy", "ml", "iris-drift")

    def status() -> dict[str, Any]:
        obj = kube.get("modelops.dev/v1alpha1", "DriftPolicy", "ml", "iris-drift")
        assert obj is not None
        return cast(dict[str, Any], obj["status"])

    # First scrape of a pod that started before the window: a baseline, no verdict.
    assert reconcile_driftpolicy(deps, key) == 60
    assert status()["samples"] == 0
    assert {c["type"]: c["status"] for c in status()["conditions"]} == {
        "Ready": "True",
        "InsufficientData": "True",
        "DriftDetected": "Unknown",
    }
    # The status write queues the policy again at once: not due, nothing is scraped.
    scrapes = pod.paths.count("/metrics")
    now[0] += timedelta(seconds=1)
    assert reconcile_driftpolicy(deps, key) == pytest.approx(59)
    assert pod.paths.count("/metrics") == scrapes

    drifted = {
        "sepal_length": np.full(150, 9.0),
        "colour": np.array(["green"] * 150, dtype=object),
    }
    for _ in range(2):
        server.features.observe(drifted)
        now[0] += timedelta(seconds=60)
        reconcile_driftpolicy(deps, key)
    assert status()["datasetDrift"] is True
    assert status()["consecutiveDrifted"] == 2
    assert kube.events == ["DriftDetected"]
    labels = (("model", "iris"), ("namespace", "ml"), ("policy", "iris-drift"), ("version", "v3"))
    assert exported(metrics, "modelops_drift_detected") == {labels: 1.0}
    assert exported(metrics, "modelops_drift_dataset_drifted") == {labels: 1.0}
    assert exported(metrics, "modelops_drift_window_samples") == {labels: 300.0}
    scores = exported(metrics, "modelops_drift_feature_score")
    # Five non-empty reference buckets read as a discrete feature: auto picks chi-squared.
    assert {dict(k)["feature"]: dict(k)["method"] for k in scores} == {
        "sepal_length": "chi2",
        "colour": "chi2",
    }
    assert exported(metrics, "modelops_drift_last_evaluation_timestamp_seconds") == {
        labels[:3]: now[0].timestamp()
    }

    # The serving pods go away: Ready False, the verdict stays, the failure is counted.
    kube.delete_all("Pod")
    now[0] += timedelta(seconds=60)
    reconcile_driftpolicy(deps, key)
    ready = next(c for c in status()["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoReadyPods")
    failures = exported(metrics, "modelops_drift_evaluation_failures_total")
    assert failures[(*labels[:3], ("reason", "NoReadyPods"))] == 1.0
    assert failures[(*labels[:3], ("reason", "ScrapeFailed"))] == 0.0
    assert exported(metrics, "modelops_drift_detected") == {labels: 1.0}

    # Deleted: every series goes.
    kube.delete_all("DriftPolicy")
    assert reconcile_driftpolicy(deps, key) is GONE
    assert not [
        s
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name.startswith("modelops_drift")
    ]
