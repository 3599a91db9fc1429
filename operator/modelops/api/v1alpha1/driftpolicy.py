"""DriftPolicy: which live data to compare with a version's training data, and what to do
when they drift apart."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from modelops.api.meta import (
    API_VERSION,
    DNS_LABEL_MAX_LENGTH,
    DNS_LABEL_PATTERN,
    ApiModel,
    ConditionDoc,
    Duration,
    HttpUrl,
    ModelReference,
    NameRule,
    ObjectMeta,
    ObjectStatus,
    VersionName,
    cel,
    list_map,
    parse_duration,
    unique_by,
    validations,
)

FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
MIN_INTERVAL_SECONDS = 10
TOP_FEATURES_MAX_ITEMS = 10


class DriftMethod(StrEnum):
    """A statistical test or distance that compares live data with the training reference."""

    AUTO = "auto"
    PSI = "psi"
    KS = "ks"
    JS = "js"
    WASSERSTEIN = "wasserstein"
    CHI2 = "chi2"


class Correction(StrEnum):
    """How p-values are corrected for testing many features at once."""

    NONE = "none"
    BONFERRONI = "bonferroni"
    BH = "bh"


class FeatureOverride(ApiModel):
    """A different method or threshold for one feature."""

    name: FeatureName
    """Feature name, as in the model's reference statistics."""

    method: DriftMethod | None = None
    """Method for this feature; unset uses spec.method."""

    threshold: float | None = Field(default=None, gt=0, le=10)
    """Threshold for this feature: a distance for psi, js and wasserstein (drift when the
    distance is at least this), a p-value for ks and chi2 (drift when p is at most this)."""


class Thresholds(ApiModel):
    """When one feature counts as drifted."""

    distance: float = Field(default=0.1, gt=0, le=10)
    """A feature drifts when its distance (psi, js, normed wasserstein) is at least this. 0.1
    is the default of Evidently and NannyML."""

    p_value: float = Field(default=0.05, gt=0, lt=1)
    """A feature drifts when its p-value (ks, chi2), after correction, is at most this."""


class PodsSource(ApiModel):
    """Scrape the feature histograms from the metrics endpoint of the serving pods."""


class PrometheusSource(ApiModel):
    """Query the feature histograms from Prometheus."""

    url: HttpUrl
    """Base URL of the Prometheus HTTP API, for example http://prometheus.monitoring:9090."""

    labels: dict[str, Annotated[str, StringConstraints(max_length=253)]] | None = Field(
        default=None, max_length=16
    )
    """Extra label matchers added to every query, for example cluster: eu-1 when one
    Prometheus holds several clusters."""


_ONE_SOURCE = cel(
    "(has(self.pods) ? 1 : 0) + (has(self.prometheus) ? 1 : 0) == 1",
    "source must set exactly one of pods or prometheus",
)


class Source(ApiModel):
    """Where live feature distributions come from. Exactly one must be set."""

    model_config = ConfigDict(json_schema_extra=validations(_ONE_SOURCE))

    pods: PodsSource | None = None
    """Scrape the serving pods directly (the default); needs no Prometheus."""

    prometheus: PrometheusSource | None = None
    """Query a Prometheus that scrapes the serving pods."""

    @model_validator(mode="after")
    def _check_one(self) -> "Source":
        if (self.pods is None) == (self.prometheus is None):
            raise ValueError(_ONE_SOURCE["message"])
        return self


class RetrainAction(ApiModel):
    """Start a TrainingRun from the Model's spec.training when drift is detected."""

    enabled: bool = True
    """Set to false to pause retraining without losing the settings."""

    cooldown: Duration = "1h"
    """Least time between two retrains started by this policy (Go duration)."""

    max_concurrent: int = Field(default=1, ge=1, le=10)
    """Most unfinished TrainingRuns this policy may have at once."""


class Actions(ApiModel):
    """What happens when drift is detected."""

    alert: bool = True
    """Export the drift gauges that the bundled Prometheus alert rules fire on."""

    retrain: RetrainAction | None = None
    """Retrain the model; unset never retrains. Needs spec.training in the Model."""


_INTERVAL_FLOOR = cel(
    f"duration(self.interval) >= duration('{MIN_INTERVAL_SECONDS}s')",
    f"interval must be at least {MIN_INTERVAL_SECONDS}s",
    field_path=".interval",
)


class DriftPolicySpec(ApiModel):
    """What to watch for drift, how to decide, and what to do about it."""

    model_config = ConfigDict(json_schema_extra=validations(_INTERVAL_FLOOR))

    model_ref: ModelReference
    """The Model whose live traffic is watched."""

    version: VersionName | None = None
    """The version whose training data is the reference; unset follows the Model's production
    version."""

    features: Annotated[list[FeatureName], AfterValidator(unique_by())] | None = Field(
        default=None, max_length=256, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Features to watch; unset watches every feature in the reference statistics."""

    method: DriftMethod = DriftMethod.AUTO
    """Method for every feature without an override. auto chooses per feature as Evidently
    does: ks (numeric) or chi2 (categorical) for references of at most 1000 rows, otherwise
    wasserstein (numeric) or js (categorical)."""

    per_feature: Annotated[list[FeatureOverride], AfterValidator(unique_by("name"))] | None = Field(
        default=None, max_length=256, json_schema_extra=list_map("name")
    )
    """Method or threshold overrides for single features."""

    thresholds: Thresholds = Field(default_factory=Thresholds, json_schema_extra={"default": {}})
    """Default thresholds for distances and p-values."""

    correction: Correction = Correction.NONE
    """Multiple-testing correction of p-values across features: none (Evidently's; the default,
    since the dataset share rule already keeps dataset-level false alarms at zero in the
    measurements of docs/drift.md), bonferroni (alibi-detect's default; fewest per-feature false
    alarms, least power) or bh (Benjamini-Hochberg). Distances are not corrected."""

    dataset_drift_share: float = Field(default=0.5, gt=0, le=1)
    """The dataset drifts when at least this share of the watched features drift (Evidently's
    default is 0.5)."""

    window: Duration = "10m"
    """Length of the live-data window compared with the reference (Go duration)."""

    min_samples: int = Field(default=100, ge=1, le=100_000_000)
    """Fewest predictions a window needs for a verdict; smaller windows report
    InsufficientData and leave DriftDetected as it was."""

    interval: Duration = "60s"
    """How often a window is evaluated (Go duration, at least 10s)."""

    consecutive_windows: int = Field(default=2, ge=1, le=100)
    """DriftDetected turns True after this many drifted windows in a row and back to False
    after this many clean ones, so one noisy window changes nothing."""

    source: Source = Field(
        default_factory=lambda: Source(pods=PodsSource()),
        json_schema_extra={"default": {"pods": {}}},
    )
    """Where live feature histograms come from; scraping the serving pods by default."""

    actions: Actions = Field(default_factory=Actions, json_schema_extra={"default": {}})
    """What to do on drift."""

    @model_validator(mode="after")
    def _check_interval(self) -> "DriftPolicySpec":
        if parse_duration(self.interval).total_seconds() < MIN_INTERVAL_SECONDS:
            raise ValueError(_INTERVAL_FLOOR["message"])
        return self


class FeatureDrift(ApiModel):
    """The verdict on one feature in the last window."""

    name: FeatureName
    """Feature name."""

    method: DriftMethod
    """The method used (never auto: the one auto chose)."""

    score: float
    """The distance (psi, js, wasserstein) or the corrected p-value (ks, chi2)."""

    threshold: float
    """The threshold score was compared with."""

    drifted: bool
    """Whether the feature drifted in the last window: its score passed the threshold, or its
    share of missing values changed (then missingShare and referenceMissingShare say how)."""

    missing_share: float | None = None
    """Share of missing values in the window; set when the window or the reference has any."""

    reference_missing_share: float | None = None
    """Share of missing values in the training data; set with missingShare."""


class LastRetrain(ApiModel):
    """The most recent retrain this policy started."""

    time: AwareDatetime
    """When it was started."""

    training_run: str = Field(max_length=63)
    """Name of the TrainingRun."""


class DriftPolicyStatus(ObjectStatus):
    """The result of the most recent evaluation."""

    version: VersionName | None = None
    """The version whose reference the last window was compared with."""

    last_evaluation: AwareDatetime | None = None
    """When the last window was evaluated."""

    samples: int | None = Field(default=None, ge=0)
    """Predictions in the last window."""

    dataset_drift: bool | None = None
    """Whether the last window drifted as a whole (see spec.datasetDriftShare)."""

    drifted_share: float | None = Field(default=None, ge=0, le=1)
    """Share of watched features that drifted in the last window."""

    top_features: list[FeatureDrift] | None = Field(default=None, max_length=TOP_FEATURES_MAX_ITEMS)
    """The most drifted features of the last window, worst first, at most 10."""

    consecutive_drifted: int | None = Field(default=None, ge=0)
    """Drifted windows in a row, up to the last one."""

    consecutive_clean: int | None = Field(default=None, ge=0)
    """Clean windows in a row, up to the last one."""

    last_retrain: LastRetrain | None = None
    """The most recent retrain started by this policy."""


DRIFTPOLICY_CONDITIONS = (
    ConditionDoc(
        type="Ready",
        summary="The summary condition: can the policy evaluate drift?",
        true="The last evaluation ran: the version, its reference statistics and the source "
        "were all reachable.",
        false="The policy cannot evaluate: the Model or version does not exist, the version "
        "has no reference statistics, or the source cannot be read.",
        unknown="No evaluation has run yet.",
    ),
    ConditionDoc(
        type="DriftDetected",
        summary="The drift verdict, with hysteresis over spec.consecutiveWindows.",
        true="The last spec.consecutiveWindows windows all drifted.",
        false="The last spec.consecutiveWindows windows were all clean.",
        unknown="Not enough windows have been evaluated for a verdict yet.",
    ),
    ConditionDoc(
        type="InsufficientData",
        summary="Whether the last window was too small for a verdict.",
        true="The last window had fewer than spec.minSamples predictions; DriftDetected "
        "kept its status.",
        false="The last window had enough predictions.",
        unknown="No window has been evaluated yet.",
    ),
)

NAME_RULE = NameRule(
    max_length=DNS_LABEL_MAX_LENGTH,
    pattern=DNS_LABEL_PATTERN,
    message=f"metadata.name must be a DNS label (lowercase letters, digits and '-') of at most"
    f" {DNS_LABEL_MAX_LENGTH} characters: it labels the TrainingRuns the policy starts",
)


class DriftPolicy(ApiModel):
    """Watches a served model's live inputs for drift from its training data, exports drift
    metrics for alerting, and can retrain the model."""

    api_version: Literal["modelops.dev/v1alpha1"] = API_VERSION
    kind: Literal["DriftPolicy"] = "DriftPolicy"
    metadata: ObjectMeta
    spec: DriftPolicySpec
    status: DriftPolicyStatus = Field(default_factory=DriftPolicyStatus)

    @model_validator(mode="after")
    def _check_name(self) -> "DriftPolicy":
        NAME_RULE.check(self.metadata.name)
        return self
