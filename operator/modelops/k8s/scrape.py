"""Gather a DriftPolicy's input: the watched version, its reference statistics and the live
feature distributions, from the API server, the serving pods or Prometheus.

:func:`collect` does every read of one drift reconcile and never raises for what a policy can
run into (a missing Model, unreachable pods, a failing Prometheus): those end the collection
with a :class:`~modelops.core.driftpolicy.Problem` that the pure decision turns into a
condition. Errors talking to the API server itself propagate, so the work queue retries.

- **Pods** (``spec.source.pods``): the ready pods the version's Service selects are scraped at
  ``GET http://<pod IP>:<http port>/metrics``, concurrently, each with a short timeout. They
  are read from the pods themselves rather than the Service's EndpointSlices: one LIST gives
  readiness, address and the start time the window needs, and it also works where
  EndpointSlices cannot list the pods (the API server refuses loopback addresses in them,
  which is what the local test runner gives its pods). The text format is parsed with
  ``prometheus_client``'s parser. Pods that fail are left out of this scrape (the window
  carries on without them); only when every pod fails is the scrape a problem.
- **Prometheus** (``spec.source.prometheus``): two instant queries of ``sum by (feature, le)``
  and ``sum by (feature, category)`` of ``increase(…[window])`` over the server's feature
  series of the watched model and version: the window's counts, summed over pods.
- **Reference statistics** are read from a serving pod (``GET /v2/models/{model}/versions/
  {version}/reference``, the ``reference.json`` the server verified and loaded) and cached per
  policy while the ModelVersion and its artifact digest stay the same, so they are fetched
  once per version. The operator cannot read the artifact volume itself.

Pod and Prometheus traffic never goes through an HTTP proxy from the environment: both are
addresses inside the cluster.
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from modelops import api
from modelops.core import driftpolicy, labels, naming
from modelops.core import model as model_core
from modelops.core.driftpolicy import Collected, FeatureSeries, PodSeries, Problem
from modelops.core.plan import Obj
from modelops.k8s.client import Kube
from modelops.k8s.observe import get_model

log = logging.getLogger(__name__)

SERVER_PORT_NAME: Final = "http"
DEFAULT_SERVER_PORT: Final = 8080
FEATURE_BUCKET: Final = "modelops_server_feature_value_bucket"
FEATURE_CATEGORY: Final = "modelops_server_feature_category_total"
FEATURE_MISSING: Final = "modelops_server_feature_missing_total"
FEATURE_OUT_OF_RANGE: Final = "modelops_server_feature_out_of_range_total"
FEATURE_OFFSET: Final = "modelops_server_feature_offset_total"
FEATURE_EXACT: Final = "modelops_server_feature_exact_total"
FEATURE_BELOW_VALUE: Final = "modelops_server_feature_below_value_total"
DEFAULT_TIMEOUT: Final = 5.0
"""Seconds one HTTP request to a pod or to Prometheus may take."""
MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024
"""Largest /metrics page, reference document or query answer read; a feature histogram is a
few hundred bytes, so this only guards against a misbehaving endpoint."""
MAX_SCRAPE_WORKERS: Final = 8

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Cluster-internal traffic: never through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SourceError(Exception):
    """An HTTP source (a pod, Prometheus) could not be read; the message says what failed."""


@dataclass(frozen=True)
class Endpoint:
    """A ready serving pod: its address, the port named ``http`` and its start time (seconds
    since the epoch, from ``status.startTime``; None if unknown)."""

    pod: str
    address: str
    port: int
    started_at: float | None = None

    @property
    def base_url(self) -> str:
        """``http://address:port``, with an IPv6 address in brackets."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


class ReferenceCache:
    """Reference documents by policy, valid while the watched ModelVersion (uid and artifact
    digest) stays the same. Owned by the caller so that it lives as long as the operator."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Hashable, Obj]] = {}

    def get(self, key: Hashable, identity: Hashable) -> Obj | None:
        """The cached document of ``key`` if it was stored for ``identity``."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] == identity else None

    def put(self, key: Hashable, identity: Hashable, document: Obj) -> None:
        """Remember ``document`` for ``key`` (replacing another version's)."""
        self._entries[key] = (identity, document)

    def forget(self, key: Hashable) -> None:
        """Drop the document of a deleted policy."""
        self._entries.pop(key, None)


def collect(
    kube: Kube,
    policy: api.DriftPolicy,
    references: ReferenceCache,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Collected:
    """Read everything one evaluation of ``policy`` needs; see the module docstring."""
    ns, name = policy.metadata.namespace or "", policy.metadata.name or ""
    model_name = policy.spec.model_ref.name
    model, _ = get_model(kube, ns, model_name)
    version = driftpolicy.target_version(policy, model)
    if model is None or version is None:
        return Collected(model=model, version=version)
    runs = _retrain_runs(kube, policy)
    raw_version = kube.get(
        api.API_VERSION, "ModelVersion", ns, naming.model_version_name(model_name, version)
    )
    model_version = _parse(api.ModelVersion, raw_version)
    found = Collected(model=model, version=version, model_version=model_version, runs=runs)
    if model_version is None or model_version.spec.reference_stats is None:
        return found
    endpoints = ready_pods(kube, ns, model_name, version)
    no_pods = Problem(
        driftpolicy.NO_READY_PODS,
        f"No ready pod serves version {version} of Model {model_name} "
        f"(Service {naming.serving_name(model_name, version)})",
    )
    identity = (model_version.metadata.uid, model_version.spec.artifact.digest)
    reference = references.get((ns, name), identity)
    if reference is None:
        if not endpoints:
            return replace(found, problem=no_pods)
        try:
            reference = fetch_reference(endpoints, model_name, version, timeout=timeout)
        except SourceError as e:
            return replace(found, problem=Problem(driftpolicy.REFERENCE_UNAVAILABLE, str(e)))
        references.put((ns, name), identity, reference)
    found = replace(found, reference=reference)
    prometheus = policy.spec.source.prometheus
    if prometheus is not None:
        try:
            series = query_prometheus(
                prometheus.url,
                model_name,
                version,
                driftpolicy.window_seconds(policy),
                extra_labels=prometheus.labels or {},
                timeout=timeout,
            )
        except SourceError as e:
            return replace(found, problem=Problem(driftpolicy.PROMETHEUS_QUERY_FAILED, str(e)))
        return replace(found, series=series)
    if not endpoints:
        return replace(found, problem=no_pods)
    pods, errors = scrape_pods(endpoints, model_name, version, timeout=timeout)
    if not pods:
        failures = "; ".join(f"{pod}: {error}" for pod, error in sorted(errors.items()))
        return replace(
            found,
            problem=Problem(
                driftpolicy.SCRAPE_FAILED,
                f"No ready pod of version {version} could be scraped: {failures}"[:4096],
            ),
        )
    for pod, error in sorted(errors.items()):
        log.warning(
            "Could not scrape pod %s/%s for DriftPolicy %s/%s: %s", ns, pod, ns, name, error
        )
    return replace(found, pods=pods)


def _parse(kind: type[api.ModelVersion], raw: Obj | None) -> api.ModelVersion | None:
    if raw is None:
        return None
    try:
        return kind.model_validate(raw)
    except ValidationError:
        return None  # admission refuses such objects; a stray one has nothing to compare


def _retrain_runs(kube: Kube, policy: api.DriftPolicy) -> tuple[api.TrainingRun, ...]:
    """The TrainingRuns this policy started, when it may start more (else none are read)."""
    retrain = policy.spec.actions.retrain
    if retrain is None or not retrain.enabled:
        return ()
    raw = kube.list(
        api.API_VERSION,
        "TrainingRun",
        policy.metadata.namespace,
        labels={labels.DRIFTPOLICY: policy.metadata.name or ""},
    )
    runs = []
    for item in raw:
        try:
            runs.append(api.TrainingRun.model_validate(item))
        except ValidationError:
            continue  # its own reconcile reports it; it cannot be judged finished or not
    return tuple(runs)


# -- endpoints and pods -----------------------------------------------------------------------


def ready_pods(kube: Kube, namespace: str, model: str, version: str) -> list[Endpoint]:
    """The ready pods serving ``version`` of ``model`` (the pods its Service selects), sorted
    by name.

    Ready means a pod IP, the ``Ready`` condition True and no deletion under way, as for a
    Service endpoint. The port is the container port named ``http``, else 8080.
    """
    selector = {
        labels.MODEL: model,
        labels.VERSION: version,
        "app.kubernetes.io/component": model_core.COMPONENT,
    }
    found = []
    for pod in kube.list("v1", "Pod", namespace, labels=selector):
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
        address = status.get("podIP")
        if not ready or not address or pod["metadata"].get("deletionTimestamp"):
            continue
        port = next(
            (
                p["containerPort"]
                for c in (pod.get("spec") or {}).get("containers") or ()
                for p in c.get("ports") or ()
                if p.get("name") == SERVER_PORT_NAME and p.get("containerPort")
            ),
            DEFAULT_SERVER_PORT,
        )
        start = status.get("startTime")
        started = (
            datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() if start else None
        )
        found.append(Endpoint(pod["metadata"]["name"], address, int(port), started))
    return sorted(found, key=lambda e: e.pod)


# -- HTTP -----------------------------------------------------------------------------------


def http_get(url: str, *, timeout: float, accept: str) -> bytes:
    """GET ``url`` (no proxy) and return the body; :class:`SourceError` on any failure."""
    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": "modelops-operator"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as e:
        detail = e.read(512).decode("utf-8", errors="replace").strip()
        raise SourceError(
            f"GET {url}: HTTP {e.code} {e.reason}" + (f": {detail}" if detail else "")
        ) from None
    except urllib.error.URLError as e:
        raise SourceError(f"GET {url}: {e.reason}") from None
    except (TimeoutError, OSError) as e:
        raise SourceError(f"GET {url}: {e or type(e).__name__}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise SourceError(f"GET {url}: the answer is larger than {MAX_RESPONSE_BYTES} bytes")
    return body


def fetch_reference(
    endpoints: Iterable[Endpoint], model: str, version: str, *, timeout: float
) -> Obj:
    """The reference.json document the serving pods loaded, from the first pod that answers.

    Raises :class:`SourceError` naming every pod's failure when none does.
    """
    path = (
        f"/v2/models/{urllib.parse.quote(model, safe='')}/versions/"
        f"{urllib.parse.quote(version, safe='')}/reference"
    )
    failures = []
    for endpoint in endpoints:
        try:
            body = http_get(endpoint.base_url + path, timeout=timeout, accept="application/json")
            document = json.loads(body)
        except SourceError as e:
            failures.append(str(e))
            continue
        except ValueError as e:
            failures.append(f"GET {endpoint.base_url}{path}: not JSON: {e}")
            continue
        if not isinstance(document, dict):
            failures.append(f"GET {endpoint.base_url}{path}: not a JSON object")
            continue
        return document
    raise SourceError(
        f"The model server of version {version} did not give its reference statistics: "
        + "; ".join(failures)
    )


def scrape_pods(
    endpoints: list[Endpoint], model: str, version: str, *, timeout: float
) -> tuple[dict[str, PodSeries], dict[str, str]]:
    """Scrape every endpoint's ``/metrics`` concurrently.

    Returns the parsed series of the pods that answered, and an error message for each pod
    that did not.
    """

    def scrape(endpoint: Endpoint) -> FeatureSeries:
        body = http_get(
            endpoint.base_url + "/metrics", timeout=timeout, accept="text/plain;version=0.0.4"
        )
        return parse_metrics(body.decode("utf-8", errors="replace"), model, version)

    pods: dict[str, PodSeries] = {}
    errors: dict[str, str] = {}
    if not endpoints:
        return pods, errors
    workers = min(MAX_SCRAPE_WORKERS, len(endpoints))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift-scrape") as pool:
        futures = {e.pod: pool.submit(scrape, e) for e in endpoints}
        started = {e.pod: e.started_at for e in endpoints}
        for pod, future in futures.items():
            try:
                pods[pod] = PodSeries(future.result(), started[pod])
            except SourceError as e:
                errors[pod] = str(e)
            except ValueError as e:
                errors[pod] = f"unparseable /metrics: {e}"
    return pods, errors


# -- parsing --------------------------------------------------------------------------------


def parse_metrics(text: str, model: str, version: str) -> FeatureSeries:
    """The feature distributions of ``model`` and ``version`` in a Prometheus text page.

    Reads ``modelops_server_feature_value_bucket{feature,le}`` (cumulative histogram buckets),
    ``modelops_server_feature_category_total{feature,category}``,
    ``modelops_server_feature_missing_total{feature}``,
    ``modelops_server_feature_out_of_range_total{feature,side}``,
    ``modelops_server_feature_offset_total{feature}`` and
    ``modelops_server_feature_exact_total{feature,le}`` and
    ``modelops_server_feature_below_value_total{feature,le}``; other series, and series of
    another model or version, are ignored. Raises :class:`ValueError` for a page the parser
    cannot read.
    """
    buckets: dict[str, dict[float, float]] = {}
    categories: dict[str, dict[str, float]] = {}
    missing: dict[str, float] = {}
    out_of_range: dict[str, dict[str, float]] = {}
    offset: dict[str, float] = {}
    exact: dict[str, dict[float, float]] = {}
    below_value: dict[str, dict[float, float]] = {}
    wanted = (
        FEATURE_BUCKET,
        FEATURE_CATEGORY,
        FEATURE_MISSING,
        FEATURE_OUT_OF_RANGE,
        FEATURE_OFFSET,
        FEATURE_EXACT,
        FEATURE_BELOW_VALUE,
    )
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in wanted:
                continue
            sample_labels = sample.labels
            if sample_labels.get("model") != model or sample_labels.get("version") != version:
                continue
            feature = sample_labels.get("feature")
            if not feature:
                continue
            if sample.name == FEATURE_BUCKET and "le" in sample_labels:
                buckets.setdefault(feature, {})[float(sample_labels["le"])] = float(sample.value)
            elif sample.name == FEATURE_CATEGORY and "category" in sample_labels:
                categories.setdefault(feature, {})[sample_labels["category"]] = float(sample.value)
            elif sample.name == FEATURE_MISSING:
                missing[feature] = float(sample.value)
            elif sample.name == FEATURE_OUT_OF_RANGE and "side" in sample_labels:
                out_of_range.setdefault(feature, {})[sample_labels["side"]] = float(sample.value)
            elif sample.name == FEATURE_OFFSET:
                offset[feature] = float(sample.value)
            elif sample.name == FEATURE_EXACT and "le" in sample_labels:
                exact.setdefault(feature, {})[float(sample_labels["le"])] = float(sample.value)
            elif sample.name == FEATURE_BELOW_VALUE and "le" in sample_labels:
                below = below_value.setdefault(feature, {})
                below[float(sample_labels["le"])] = float(sample.value)
    return FeatureSeries(buckets, categories, missing, out_of_range, offset, exact, below_value)


# -- Prometheus -----------------------------------------------------------------------------


def feature_queries(
    model: str, version: str, window_seconds: float, extra_labels: Mapping[str, str]
) -> tuple[str, ...]:
    """The PromQL of the window's bucket, category and missing counts, out-of-range distances,
    offsets, exact-value and below-value counts, summed over pods, in that order.

    Raises :class:`ValueError` for an extra label name Prometheus would refuse.
    """
    for name in extra_labels:
        if not _LABEL_NAME.match(name):
            raise ValueError(f"{name!r} is not a Prometheus label name")
    matchers = {"model": model, "version": version, **extra_labels}
    selector = ",".join(f'{k}="{_promql_string(v)}"' for k, v in sorted(matchers.items()))
    window = f"{max(1, round(window_seconds * 1000))}ms"
    return (
        f"sum by (feature, le) (increase({FEATURE_BUCKET}{{{selector}}}[{window}]))",
        f"sum by (feature, category) (increase({FEATURE_CATEGORY}{{{selector}}}[{window}]))",
        f"sum by (feature) (increase({FEATURE_MISSING}{{{selector}}}[{window}]))",
        f"sum by (feature, side) (increase({FEATURE_OUT_OF_RANGE}{{{selector}}}[{window}]))",
        f"sum by (feature) (increase({FEATURE_OFFSET}{{{selector}}}[{window}]))",
        f"sum by (feature, le) (increase({FEATURE_EXACT}{{{selector}}}[{window}]))",
        f"sum by (feature, le) (increase({FEATURE_BELOW_VALUE}{{{selector}}}[{window}]))",
    )


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def query_prometheus(
    url: str,
    model: str,
    version: str,
    window_seconds: float,
    *,
    extra_labels: Mapping[str, str],
    timeout: float,
) -> FeatureSeries:
    """The window's feature counts of ``model`` and ``version`` from the Prometheus HTTP API
    at ``url``; :class:`SourceError` when a query fails."""
    try:
        queries = feature_queries(model, version, window_seconds, extra_labels)
    except ValueError as e:
        raise SourceError(f"spec.source.prometheus.labels: {e}") from None
    bucket_query, category_query, missing_query, out_of_range_query, offset_query = queries[:5]
    buckets: dict[str, dict[float, float]] = {}
    for metric, value in _instant_query(url, bucket_query, timeout):
        if "feature" in metric and "le" in metric:
            buckets.setdefault(metric["feature"], {})[float(metric["le"])] = value
    categories: dict[str, dict[str, float]] = {}
    for metric, value in _instant_query(url, category_query, timeout):
        if "feature" in metric and "category" in metric:
            categories.setdefault(metric["feature"], {})[metric["category"]] = value
    # Servers older than these counters have no such series: the answers are then empty.
    missing: dict[str, float] = {}
    for metric, value in _instant_query(url, missing_query, timeout):
        if "feature" in metric:
            missing[metric["feature"]] = value
    out_of_range: dict[str, dict[str, float]] = {}
    for metric, value in _instant_query(url, out_of_range_query, timeout):
        if "feature" in metric and "side" in metric:
            out_of_range.setdefault(metric["feature"], {})[metric["side"]] = value
    offset: dict[str, float] = {}
    for metric, value in _instant_query(url, offset_query, timeout):
        if "feature" in metric:
            offset[metric["feature"]] = value
    exact: dict[str, dict[float, float]] = {}
    below_value: dict[str, dict[float, float]] = {}
    for query, found in zip(queries[5:], (exact, below_value), strict=True):
        for metric, value in _instant_query(url, query, timeout):
            if "feature" in metric and "le" in metric:
                found.setdefault(metric["feature"], {})[float(metric["le"])] = value
    return FeatureSeries(buckets, categories, missing, out_of_range, offset, exact, below_value)


def _instant_query(base: str, query: str, timeout: float) -> list[tuple[dict[str, str], float]]:
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    body = http_get(url, timeout=timeout, accept="application/json")
    try:
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise SourceError(f"Prometheus refused {query}: {answer.get('error', answer)}")
        data = answer["data"]
        if data.get("resultType") != "vector":
            raise SourceError(f"Prometheus answered {query} with a {data.get('resultType')}")
        out = []
        for item in data["result"]:
            value = float(item["value"][1])
            if math.isfinite(value):
                out.append((dict(item["metric"]), value))
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SourceError(f"Prometheus answered {query} with an unreadable document: {e}") from None
