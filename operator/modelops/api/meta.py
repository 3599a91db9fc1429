"""Building blocks shared by every kind: the base model, object metadata, conditions and the
constrained scalar types (names, digests, URIs, durations, quantities).

Every constraint here is declared once and reaches two places: pydantic enforces it when the
operator parses an object, and the CRD generator copies it into the OpenAPI schema so the API
server enforces it at admission. Rules a schema cannot express are CEL rules (:func:`cel`),
each mirrored by a pydantic validator with the same message unless it compares with the old
object (``oldSelf``), which only the API server sees.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

GROUP: Final = "modelops.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "modelops.dev/v1alpha1"

# Name limits. They exist because names are concatenated into the names of child objects;
# modelops.core.naming documents every derivation and why these numbers make them fit.
DNS_LABEL_MAX_LENGTH = 63
MODEL_NAME_MAX_LENGTH = 40
VERSION_MAX_LENGTH = 22

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# RFC 1035 labels start with a letter; Service names must, and a Model name is one.
DNS_1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
URI_PATTERN = (
    r"^(pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/\S*)?"
    r"|file:///\S*"
    r"|(s3|gs)://[a-z0-9][-a-z0-9.]*[a-z0-9](/\S*)?"
    r"|https?://[^\s/]+(/\S*)?)$"
)
HTTP_URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
# Go duration syntax without the sub-millisecond units nobody needs for these knobs; CEL's
# duration() parses every string this accepts, so rules can compare durations.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
METRIC_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

_T = TypeVar("_T")

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields rejected.

    Attribute docstrings become field descriptions, which the CRD generator turns into the
    text ``kubectl explain`` prints, so they are written for users.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready wire form: camelCase keys, unset optional fields left out.

        This is the one serialisation used for the API server and for comparisons with what
        it returns; defaults are kept because the API server writes them too.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def cel(rule: str, message: str, *, field_path: str | None = None) -> dict[str, str]:
    """Describe one ``x-kubernetes-validations`` entry.

    ``message`` must name the field it is about, because it is all a user sees when the API
    server refuses an object; ``field_path`` (relative to the node carrying the rule) makes the
    API server report the error at that field instead of at the node.
    """
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """Wrap CEL rules for ``json_schema_extra`` on a model or a field."""
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> dict[str, Any]:
    """Mark a list as a map keyed by ``keys`` (for ``json_schema_extra`` on a field).

    The API server then refuses two items with the same keys, and server-side apply merges
    items by key instead of replacing the whole list. Pair it with :func:`unique_by` so pydantic
    refuses the same objects.
    """
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def unique_by(key: str | None = None) -> Callable[[list[_T]], list[_T]]:
    """Return a validator refusing a list in which two items share the value of ``key``.

    With ``key`` None the items themselves must be unique (a list used as a set).
    """

    def check(items: list[_T]) -> list[_T]:
        seen: set[object] = set()
        for item in items:
            value = item if key is None else getattr(item, key)
            if value in seen:
                raise ValueError(f"duplicate item {value!r}: each must appear once")
            seen.add(value)
        return items

    return check


def parse_duration(value: str) -> timedelta:
    """Parse a duration written in Go syntax (``90s``, ``10m``, ``1h30m``, ``720h``).

    Raises ``ValueError`` for anything the schema pattern would refuse, so a value that passed
    admission always parses.
    """
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: use Go syntax such as 90s, 10m or 1h30m")
    seconds = sum(
        float(number) * _DURATION_UNIT_SECONDS[unit]
        for number, unit in _DURATION_PART.findall(value)
    )
    return timedelta(seconds=seconds)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"invalid quantity {value!r}: use Kubernetes syntax such as 500m or 1Gi")
    return value


DnsLabel = Annotated[
    str, StringConstraints(max_length=DNS_LABEL_MAX_LENGTH, pattern=DNS_LABEL_PATTERN)
]
DnsSubdomain = Annotated[str, StringConstraints(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
ModelName = Annotated[
    str, StringConstraints(max_length=MODEL_NAME_MAX_LENGTH, pattern=DNS_1035_LABEL_PATTERN)
]
VersionName = Annotated[
    str, StringConstraints(max_length=VERSION_MAX_LENGTH, pattern=DNS_LABEL_PATTERN)
]
Digest = Annotated[str, StringConstraints(max_length=71, pattern=DIGEST_PATTERN)]
Uri = Annotated[str, StringConstraints(max_length=2048, pattern=URI_PATTERN)]
HttpUrl = Annotated[str, StringConstraints(max_length=2048, pattern=HTTP_URL_PATTERN)]
Duration = Annotated[
    str,
    StringConstraints(max_length=32, pattern=DURATION_PATTERN),
    AfterValidator(_check_duration),
]
MetricName = Annotated[str, StringConstraints(max_length=63, pattern=METRIC_NAME_PATTERN)]
Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
METRICS_MAX_PROPERTIES = 64
# Structural schemas have no propertyNames, so map keys can only be checked with CEL.
_METRIC_NAMES = cel(
    f"self.all(name, name.size() <= 63 && name.matches('{METRIC_NAME_PATTERN}'))",
    "metric names must start with a letter or '_', contain only letters, digits, '_', '.' and"
    " '-', and be at most 63 characters",
)


def _check_metric_names(metrics: dict[str, float]) -> dict[str, float]:
    for name in metrics:
        if len(name) > 63 or not re.fullmatch(METRIC_NAME_PATTERN, name):
            raise ValueError(f"invalid metric name {name!r}: {_METRIC_NAMES['message']}")
    return metrics


Metrics = Annotated[
    dict[str, float],
    # Constraints before validators: pydantic maps a dict's max_length to maxProperties only
    # while the schema is still a plain dict.
    Field(max_length=METRICS_MAX_PROPERTIES, json_schema_extra=validations(_METRIC_NAMES)),
    AfterValidator(_check_metric_names),
]
"""Named evaluation metrics, for example ``{"accuracy": 0.967}``."""

FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""An object whose content modelops does not interpret: every field is kept as written."""


class ObjectMeta(BaseModel):
    """The parts of Kubernetes object metadata the operator reads.

    Metadata belongs to the API server, so unknown fields are kept rather than refused.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="allow",
    )

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: AwareDatetime | None = None
    deletion_timestamp: AwareDatetime | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None


class ConditionStatus(StrEnum):
    """The three values of a condition's status, as in the Kubernetes API conventions."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's observed state, in the shape of a Kubernetes condition."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """Condition type in PascalCase, for example Ready. Unique within the list."""

    status: ConditionStatus
    """True, False or Unknown."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the condition was computed from. If it is lower than the
    object's current generation, the condition is out of date."""

    last_transition_time: AwareDatetime
    """When status last changed between True, False and Unknown. A change of reason or
    message alone does not move it."""

    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """Machine-readable PascalCase cause of the current status, for example JobSucceeded."""

    message: str = Field(default="", max_length=32768)
    """Human-readable details about the current status; may be empty."""


CONDITIONS_MAX_ITEMS = 16


class Announcement(ApiModel):
    """An Event or CloudEvent the operator decided on and has not yet seen settle."""

    id: str = Field(max_length=64)
    """Stable id: the Event's ``modelops.dev/announcement`` annotation, the CloudEvent's id."""

    kind: Literal["Event", "CloudEvent"]
    """What is announced."""

    type: str = Field(max_length=253)
    """Normal or Warning for an Event; the CloudEvent type otherwise."""

    reason: str | None = Field(default=None, max_length=128)
    """The Event's reason."""

    message: str | None = Field(default=None, max_length=1024)
    """The Event's message."""

    subject: str | None = Field(default=None, max_length=512)
    """The CloudEvent's subject (namespace/name)."""

    data: str | None = Field(default=None, max_length=8192)
    """The CloudEvent's data, as JSON."""


class ObjectStatus(ApiModel):
    """Status fields every kind shares."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the operator last acted on. Status describes an older spec
    while this is lower than metadata.generation."""

    conditions: Annotated[list[Condition], AfterValidator(unique_by("type"))] = Field(
        default_factory=list,
        max_length=CONDITIONS_MAX_ITEMS,
        json_schema_extra=list_map("type"),
    )
    """Current state as conditions, one per type; see the conditions section of the API
    reference for the meaning of each type."""

    announcements: list[Announcement] | None = Field(default=None, max_length=50)
    """Events and CloudEvents decided but not yet confirmed sent, kept so that a restarted
    operator sends them again (at least once, under the same id). Empty when all is settled."""


class ModelReference(ApiModel):
    """A reference to a Model in the same namespace."""

    name: ModelName
    """Name of the Model."""


@dataclass(frozen=True)
class ConditionDoc:
    """What one condition type means, documented like the rest of the API.

    The conditions section of each kind in the API reference is generated from these.
    """

    type: str
    summary: str
    true: str
    false: str
    unknown: str


@dataclass(frozen=True)
class NameRule:
    """A limit on metadata.name, enforced by a CEL rule at the root of the CRD schema.

    Names longer than a DNS label are fine for Kubernetes but not for the children modelops
    derives from them (Job, Deployment and Service names, label values).
    """

    max_length: int
    pattern: str
    message: str

    def to_cel(self) -> dict[str, str]:
        """Return the CEL rule; the API server evaluates it at the root of the object."""
        return cel(
            f"self.metadata.name.size() <= {self.max_length}"
            f" && self.metadata.name.matches('{self.pattern}')",
            self.message,
            field_path=".metadata.name",
        )

    def check(self, name: str | None) -> None:
        """Raise ``ValueError`` with the rule's message if ``name`` breaks it (None passes)."""
        if name is not None and (
            len(name) > self.max_length or not re.fullmatch(self.pattern, name)
        ):
            raise ValueError(self.message)


def kstatus_conditions(reconciling: str, stalled: str) -> tuple[ConditionDoc, ConditionDoc]:
    """The two "abnormal-true" conditions of the kstatus convention (sigs.k8s.io/cli-utils),
    which Flux and other GitOps tools read: ``Reconciling`` while the object moves towards its
    spec, ``Stalled`` when it cannot get there without someone changing something."""
    return (
        ConditionDoc(
            type="Reconciling",
            summary="Whether modelops is still working towards the spec (kstatus convention).",
            true=reconciling,
            false="Nothing is in progress.",
            unknown="Not determined yet.",
        ),
        ConditionDoc(
            type="Stalled",
            summary="Whether the spec cannot be reached without a change (kstatus convention).",
            true=stalled,
            false="Nothing is stuck.",
            unknown="Not determined yet.",
        ),
    )
