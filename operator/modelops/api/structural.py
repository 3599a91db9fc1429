"""Rewrite pydantic's JSON Schema into a Kubernetes *structural* schema.

The API server accepts only a subset of OpenAPI v3 for CRDs: no ``$ref``, a ``type`` on every
node, no ``additionalProperties`` next to ``properties``, no ``title``… (see "Specifying a
structural schema" in the Kubernetes CRD documentation). pydantic emits full JSON Schema, so
this module inlines, simplifies and checks it. Anything it does not know how to translate is an
error rather than a silently wrong CRD.
"""

import copy
import inspect
import re
from typing import Any

from pydantic import BaseModel

# Keywords a structural schema may carry; everything else pydantic emits is either rewritten
# below or refused.
_ALLOWED = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "anyOf",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-validations",
        "x-kubernetes-map-type",
    }
)
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_NULL = {"type": "null"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the structural OpenAPI v3 schema of ``model`` as the API server wants it.

    Field and class docstrings become descriptions, pydantic constraints become OpenAPI
    bounds, and ``x-kubernetes-*`` keys from ``json_schema_extra`` are kept.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _rewrite(raw, definitions, model.__name__)


def _rewrite(node: dict[str, Any], definitions: dict[str, Any], path: str) -> dict[str, Any]:
    node = dict(node)
    base: dict[str, Any] | None = None
    if "$ref" in node:
        base = _rewrite(_resolve(node.pop("$ref"), definitions), definitions, path)
    elif "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise ValueError(f"{path}: allOf with {len(parts)} parts has no structural form")
        base = _rewrite(parts[0], definitions, path)
    elif "anyOf" in node:
        options = [option for option in node["anyOf"] if option != _NULL]
        if len(options) == 1:
            # Optional[X]: absence, not null, is how a field is left unset, so X it is.
            del node["anyOf"]
            base = _rewrite(options[0], definitions, path)
        elif options == _INT_OR_STRING:
            node["anyOf"] = _INT_OR_STRING
            node["x-kubernetes-int-or-string"] = True
        else:
            raise ValueError(f"{path}: anyOf {options} has no structural form")

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = _paragraphs(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020-12 puts the bound here; OpenAPI v3.0 wants a flag on the bound.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {
                name: _rewrite(sub, definitions, f"{path}.{name}") for name, sub in value.items()
            }
        elif key == "items":
            out[key] = _rewrite(value, definitions, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _rewrite(value, definitions, f"{path}{{}}")
            elif value is not False:
                raise ValueError(f"{path}: use FreeForm for an object with arbitrary content")
        elif key in _ALLOWED:
            out[key] = copy.deepcopy(value)
        else:
            raise ValueError(f"{path}: JSON Schema keyword {key!r} has no structural form")

    if base is not None:
        out = _merge(base, out)
    if not out.get("properties"):
        out.pop("properties", None)
    _check_typed(out, path)
    return out


def _resolve(ref: str, definitions: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unexpected reference {ref}")
    resolved: dict[str, Any] = definitions[ref.removeprefix(prefix)]
    return resolved


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Combine a referenced schema with the keys written next to the reference.

    The field's own keys win (its description is more specific than the class docstring),
    except CEL rules, which add up: the class's rules and the field's rules all apply.
    """
    merged = {**base, **override}
    rules = base.get("x-kubernetes-validations", []) + override.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _check_typed(node: dict[str, Any], path: str) -> None:
    if "type" in node or node.get("x-kubernetes-int-or-string"):
        return
    if node.get("x-kubernetes-preserve-unknown-fields"):
        raise ValueError(f"{path}: a free-form object still needs type: object")
    raise ValueError(f"{path}: schema node has no type")


def description_of(cls: type) -> str:
    """Return a class docstring as a schema description."""
    return _paragraphs(inspect.cleandoc(cls.__doc__ or ""))


def _paragraphs(text: str) -> str:
    """Join the lines of each paragraph so ``kubectl explain`` can wrap them itself."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
