"""Resource quantities (``500m``, ``1Gi``, ``2e3``) and the downward API's ``resourceFieldRef``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
RESOURCE_FIELDS = frozenset(
    f"{kind}.{resource}"
    for kind in ("limits", "requests")
    for resource in ("cpu", "memory", "ephemeral-storage")
)


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a Kubernetes quantity; ``ValueError`` if it is not one."""
    if isinstance(text, int | float):
        return Fraction(text)
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}")
    number, suffix = match.group(1), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return Fraction(number) * Fraction(10) ** int(suffix[1:])
    return Fraction(number) * _SUFFIX[suffix]


def resource_field_value(
    resources: Mapping[str, Any] | None,
    resource: str,
    divisor: str | int | None,
    allocatable: Mapping[str, str],
) -> str:
    """The value the kubelet exposes for ``resourceFieldRef`` (``limits.cpu`` and friends).

    The quantity is divided by ``divisor`` (default ``1``) and rounded up to an integer. A limit
    the container does not set is the node's allocatable amount, as on a real node; an unset
    request is 0.
    """
    if resource not in RESOURCE_FIELDS:
        raise ValueError(f"unsupported container resource: {resource!r}")
    kind, name = resource.split(".", 1)
    declared = (resources or {}).get(kind) or {}
    if name in declared:
        value = parse_quantity(declared[name])
    elif kind == "limits":
        value = parse_quantity(allocatable.get(name, "0"))
    else:
        value = Fraction(0)
    div = parse_quantity(divisor or "1")
    if div <= 0:
        raise ValueError(f"invalid divisor {divisor!r} for {resource}")
    return str(math.ceil(value / div))
