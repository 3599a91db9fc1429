"""core.naming: every derived name fits its Kubernetes limit and is deterministic."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelops.api import DNS_LABEL_MAX_LENGTH, MODEL_NAME_MAX_LENGTH, VERSION_MAX_LENGTH
from modelops.core import naming

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LONGEST_MODEL = "m" * MODEL_NAME_MAX_LENGTH
LONGEST_VERSION = "v" * VERSION_MAX_LENGTH
LONGEST_RUN = "r" * DNS_LABEL_MAX_LENGTH


@pytest.mark.parametrize(
    ("name", "limit", "want"),
    [
        pytest.param("iris-7", 22, "iris-7", id="short-unchanged"),
        pytest.param("a" * 22, 22, "a" * 22, id="exactly-at-limit-unchanged"),
        # Golden values: a changed hash would rename every shortened version.
        pytest.param("a" * 23, 22, "a" * 13 + "-897d3e95", id="one-over-gets-hash"),
        pytest.param(
            "abcdefghijkl-nopqrstuvwxyz", 22, "abcdefghijkl-eb1790cf", id="trailing-dash-dropped"
        ),
        pytest.param("abcdefghijklm-opqrstuvwxyz", 22, "abcdefghijklm-ab83b5ca", id="cut-mid-word"),
    ],
)
def test_fit(name, limit, want):
    assert naming.fit(name, limit) == want


@pytest.mark.parametrize("limit", [22, 40, 63])
@pytest.mark.parametrize("name", ["x" * 100, "retrain-" + "1" * 60, "a-" * 40 + "b", "z" * 64])
def test_fit_stays_a_dns_label_within_the_limit(name, limit):
    fitted = naming.fit(name, limit)
    assert len(fitted) <= limit
    assert DNS_LABEL.match(fitted)
    assert naming.fit(name, limit) == fitted


def test_fit_refuses_a_limit_without_room_for_the_hash():
    with pytest.raises(ValueError, match="too small"):
        naming.fit("x" * 20, naming.HASH_LENGTH + 1)


def test_fit_tells_names_apart_that_share_a_prefix():
    assert naming.fit("a" * 30 + "1", 22) != naming.fit("a" * 30 + "2", 22)


@pytest.mark.parametrize(
    ("model", "run", "want"),
    [
        pytest.param("iris", "iris-7", "7", id="model-prefix-stripped"),
        pytest.param("iris", "nightly-42", "nightly-42", id="other-prefix-kept"),
        pytest.param("iris", "iris", "iris", id="run-named-like-model"),
        pytest.param("iris", "irises-3", "irises-3", id="prefix-must-end-at-dash"),
        pytest.param(
            "iris", "iris-retrain-20261128093000", "retrain-20261128093000", id="retrain-fits"
        ),
        pytest.param(
            "iris", "iris-a-very-long-experiment-name-1", "a-very-long-e-262e04e2", id="hashed"
        ),
    ],
)
def test_default_version(model, run, want):
    version = naming.default_version(model, run)
    assert version == want
    assert len(version) <= VERSION_MAX_LENGTH
    assert DNS_LABEL.match(version)


def test_every_child_name_of_the_longest_names_fits():
    assert len(naming.model_version_name(LONGEST_MODEL, LONGEST_VERSION)) == DNS_LABEL_MAX_LENGTH
    assert len(naming.serving_name(LONGEST_MODEL, LONGEST_VERSION)) == DNS_LABEL_MAX_LENGTH
    assert len(naming.stable_service_name(LONGEST_MODEL)) <= DNS_LABEL_MAX_LENGTH
    assert len(naming.job_name(LONGEST_RUN)) == DNS_LABEL_MAX_LENGTH
    at = datetime(2026, 11, 28, tzinfo=UTC)
    retrain = naming.retrain_run_name(LONGEST_MODEL, at)
    assert len(retrain) == DNS_LABEL_MAX_LENGTH
    assert naming.default_version(LONGEST_MODEL, retrain) == "retrain-20261128000000"


@pytest.mark.parametrize(
    ("function", "args", "want"),
    [
        pytest.param(naming.model_version_name, ("iris", "v3"), "iris-v3", id="modelversion"),
        pytest.param(naming.serving_name, ("iris", "v3"), "iris-v3", id="deployment-service"),
        pytest.param(naming.stable_service_name, ("iris",), "iris", id="stable-service"),
        pytest.param(naming.job_name, ("iris-7",), "iris-7", id="job"),
        pytest.param(naming.artifact_path, ("iris", "iris-7"), "iris/iris-7", id="artifact-path"),
    ],
)
def test_derived_names(function, args, want):
    assert function(*args) == want


def test_retrain_run_name_is_utc_and_sortable():
    local = timezone(timedelta(hours=-5))
    first = naming.retrain_run_name("iris", datetime(2026, 11, 28, 4, 30, tzinfo=local))
    later = naming.retrain_run_name("iris", datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert first == "iris-retrain-20261128093000"
    assert first < later


def test_retrain_run_name_refuses_naive_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        naming.retrain_run_name("iris", datetime(2026, 11, 28))  # noqa: DTZ001 - under test
