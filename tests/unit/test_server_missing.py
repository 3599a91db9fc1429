"""Missing values below the decoder: how the linear model imputes them and how they are counted.

Whether a request may carry NaN at all is the data plane's decision (its decoder); these tests
call the model and the metrics layer directly with already-decoded columns.
"""

import asyncio
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelops.api import artifact as contract
from modelops.runtimes.server.metrics import ServerMetrics
from modelops.runtimes.server.model import ArtifactServedModel, FeatureBatch
from tests.unit.test_server import CLASSIFIER_REFERENCE, MIXED, MIXED_REFERENCE, write_artifact


def loaded(directory: Path) -> ArtifactServedModel:
    model = ArtifactServedModel(directory, write_artifact(directory, MIXED, MIXED_REFERENCE))
    asyncio.run(model.load())
    return model


def test_a_missing_numeric_value_is_imputed_with_the_training_mean(tmp_path: Path) -> None:
    model = loaded(tmp_path)
    sizes = np.array([np.nan, 0.0, np.nan])
    colours = np.array(["red", "red", ""], dtype=object)
    batch = FeatureBatch(rows=3, columns={"size": sizes, "colour": colours})
    outputs = model.predict(batch)
    probabilities = outputs["predict_proba"]
    assert np.all(np.isfinite(probabilities))
    # The mean of size is 0: a NaN predicts exactly like 0.
    assert probabilities[0].tolist() == probabilities[1].tolist()
    # An empty category encodes as all zeros (no colour): both logits 0.
    assert probabilities[2].tolist() == [0.5, 0.5]
    assert outputs["predict"].tolist() == ["warm", "warm", "cold"]


def test_missing_values_are_counted_and_stay_out_of_the_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, model="iris", version="v1")
    metrics.loaded(contract.ReferenceStats.model_validate(CLASSIFIER_REFERENCE), ["x1", "x2"])
    metrics.features.observe(
        {"x1": np.array([np.nan, np.nan, 0.5]), "x2": np.array([1.0, 2.0, 3.0])}
    )
    samples = {
        (s.name, s.labels.get("feature"), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("modelops_server_feature_missing_total", "x1", None)] == 2
    assert samples[("modelops_server_feature_missing_total", "x2", None)] == 0
    # Only the one present value is in x1's histogram, and NaN is not in +Inf or the sum.
    assert samples[("modelops_server_feature_value_bucket", "x1", "+Inf")] == 1
    assert samples[("modelops_server_feature_value_count", "x1", None)] == 1
    assert samples[("modelops_server_feature_value_sum", "x1", None)] == 0.5
