"""The registry of kinds: names, short names, printer columns and the model classes.

Operator code addresses kinds through :data:`KINDS` (``KINDS["Model"].plural``) rather than
spelling group, version and plural again; the CRD generator builds each CRD from it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from modelops.api.meta import GROUP, VERSION, ApiModel, ConditionDoc, NameRule
from modelops.api.v1alpha1 import driftpolicy, model, modelversion, quarantine, trainingrun

CATEGORY = "modelops"


@dataclass(frozen=True)
class PrinterColumn:
    """One column of ``kubectl get`` output."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0
    """0 shows the column always, 1 only with ``-o wide``."""


def _condition_column(condition_type: str, name: str | None = None) -> PrinterColumn:
    return PrinterColumn(
        name=name or condition_type,
        type="string",
        json_path=f'.status.conditions[?(@.type=="{condition_type}")].status',
        description=f"Status of the {condition_type} condition.",
    )


_AGE = PrinterColumn(
    name="Age",
    type="date",
    json_path=".metadata.creationTimestamp",
    description="Time since the object was created.",
)
_MODEL = PrinterColumn(
    name="Model",
    type="string",
    json_path=".spec.modelRef.name",
    description="The Model this object belongs to.",
)


@dataclass(frozen=True)
class KindInfo:
    """Everything about one kind besides its field schema."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[ApiModel]
    """The pydantic class of the whole object (apiVersion, kind, metadata, spec, status)."""
    spec: type[ApiModel]
    status: type[ApiModel]
    printer_columns: tuple[PrinterColumn, ...]
    conditions: tuple[ConditionDoc, ...]
    name_rule: NameRule | None = None
    """The limit on metadata.name; None when another root rule covers it."""
    root_validations: tuple[dict[str, str], ...] = ()
    """CEL rules evaluated at the root of the object, besides the name rule."""

    group: str = GROUP
    version: str = VERSION
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"
    categories: tuple[str, ...] = (CATEGORY,)
    """``kubectl get modelops`` lists every kind in this category."""

    @property
    def api_version(self) -> str:
        """``group/version``, as in an object's apiVersion."""
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's metadata.name: ``<plural>.<group>``."""
        return f"{self.plural}.{self.group}"


KINDS: Mapping[str, KindInfo] = MappingProxyType(
    {
        info.kind: info
        for info in (
            KindInfo(
                kind="Model",
                plural="models",
                singular="model",
                short_names=("mdl",),
                model=model.Model,
                spec=model.ModelSpec,
                status=model.ModelStatus,
                printer_columns=(
                    PrinterColumn(
                        name="Production",
                        type="string",
                        json_path=".status.productionVersion",
                        description="The version serving production traffic.",
                    ),
                    PrinterColumn(
                        name="Canary",
                        type="string",
                        json_path=".status.canaryVersion",
                        description="The version being tried as canary.",
                    ),
                    _condition_column("Ready"),
                    PrinterColumn(
                        name="Endpoint",
                        type="string",
                        json_path=".status.endpoint",
                        description="In-cluster URL of the stable Service.",
                        priority=1,
                    ),
                    _AGE,
                ),
                conditions=model.MODEL_CONDITIONS,
                name_rule=model.NAME_RULE,
            ),
            KindInfo(
                kind="ModelVersion",
                plural="modelversions",
                singular="modelversion",
                short_names=("mv",),
                model=modelversion.ModelVersion,
                spec=modelversion.ModelVersionSpec,
                status=modelversion.ModelVersionStatus,
                printer_columns=(
                    _MODEL,
                    PrinterColumn(
                        name="Version",
                        type="string",
                        json_path=".spec.version",
                        description="Version name within the Model.",
                    ),
                    PrinterColumn(
                        name="Phase",
                        type="string",
                        json_path=".status.phase",
                        description="Registered, Canary, Serving or Retired.",
                    ),
                    PrinterColumn(
                        name="Metric",
                        type="string",
                        json_path=".status.keyMetric",
                        description="The key metric as name=value.",
                    ),
                    _condition_column("Ready"),
                    PrinterColumn(
                        name="Digest",
                        type="string",
                        json_path=".spec.artifact.digest",
                        description="Digest of the artifact.",
                        priority=1,
                    ),
                    _AGE,
                ),
                conditions=modelversion.MODELVERSION_CONDITIONS,
                root_validations=modelversion.ROOT_VALIDATIONS,
            ),
            KindInfo(
                kind="TrainingRun",
                plural="trainingruns",
                singular="trainingrun",
                # Not "tr": Tekton's TaskRun has it, and clusters often run both.
                short_names=("trun",),
                model=trainingrun.TrainingRun,
                spec=trainingrun.TrainingRunSpec,
                status=trainingrun.TrainingRunStatus,
                printer_columns=(
                    _MODEL,
                    PrinterColumn(
                        name="Phase",
                        type="string",
                        json_path=".status.phase",
                        description="Pending, Running, Suspended, Succeeded or Failed.",
                    ),
                    _condition_column("Succeeded"),
                    PrinterColumn(
                        name="Version",
                        type="string",
                        json_path=".status.modelVersion",
                        description="The ModelVersion registered from the run.",
                    ),
                    PrinterColumn(
                        name="Job",
                        type="string",
                        json_path=".status.jobName",
                        description="The Job running the training.",
                        priority=1,
                    ),
                    _AGE,
                ),
                conditions=trainingrun.TRAININGRUN_CONDITIONS,
                name_rule=trainingrun.NAME_RULE,
            ),
            KindInfo(
                kind="DriftPolicy",
                plural="driftpolicies",
                singular="driftpolicy",
                short_names=("dp",),
                model=driftpolicy.DriftPolicy,
                spec=driftpolicy.DriftPolicySpec,
                status=driftpolicy.DriftPolicyStatus,
                printer_columns=(
                    _MODEL,
                    _condition_column("DriftDetected", "Drift"),
                    PrinterColumn(
                        name="Drifted",
                        type="number",
                        json_path=".status.driftedShare",
                        description="Share of watched features that drifted in the last window.",
                    ),
                    PrinterColumn(
                        name="Samples",
                        type="integer",
                        json_path=".status.samples",
                        description="Predictions in the last window.",
                        priority=1,
                    ),
                    _condition_column("Ready"),
                    _AGE,
                ),
                conditions=driftpolicy.DRIFTPOLICY_CONDITIONS,
                name_rule=driftpolicy.NAME_RULE,
            ),
            KindInfo(
                kind="Quarantine",
                plural="quarantines",
                singular="quarantine",
                short_names=("qtn",),
                model=quarantine.Quarantine,
                spec=quarantine.QuarantineSpec,
                status=quarantine.QuarantineStatus,
                printer_columns=(
                    PrinterColumn(
                        name="Dataset",
                        type="string",
                        json_path=".spec.datasetDigest",
                        description="Digest of the tainted training data.",
                    ),
                    PrinterColumn(
                        name="Image",
                        type="string",
                        json_path=".spec.imageDigest",
                        description="Digest of the tainted training image.",
                    ),
                    PrinterColumn(
                        name="Affected",
                        type="integer",
                        json_path=".status.affectedCount",
                        description="ModelVersions quarantined by it.",
                    ),
                    PrinterColumn(
                        name="By",
                        type="string",
                        json_path=".status.declaredBy",
                        description="Who declared it.",
                    ),
                    PrinterColumn(
                        name="Reason",
                        type="string",
                        json_path=".spec.reason",
                        description="Why the data or image is tainted.",
                        priority=1,
                    ),
                    _AGE,
                ),
                conditions=quarantine.QUARANTINE_CONDITIONS,
                scope="Cluster",
            ),
        )
    }
)
"""The five kinds, in the order they are documented."""
