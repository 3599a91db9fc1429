"""The samples in manifests/samples are valid for the pydantic models and the CRD schemas.

The schemas are checked with jsonschema's Draft 4 validator: the OpenAPI v3.0 dialect of
CRDs writes exclusive bounds as booleans, as Draft 4 does. CEL rules are not evaluated here;
the API server evaluates them in tests/cluster/test_api_admission.py.
"""

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modelops.api import API_VERSION, KINDS, crdgen

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests/samples"
VALIDATORS = {
    kind: jsonschema.Draft4Validator(
        crdgen.build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    )
    for kind, info in KINDS.items()
}


def load_samples() -> list[Any]:
    params = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document and document.get("apiVersion") == API_VERSION:
                name = document["metadata"]["name"]
                params.append(pytest.param(document, id=f"{path.stem}-{index}-{name}"))
    return params


DOCUMENTS = load_samples()


def test_every_kind_has_a_sample_and_lifecycle_covers_the_loop():
    for info in KINDS.values():
        assert (SAMPLES / f"modelops_v1alpha1_{info.kind.lower()}.yaml").is_file()
    kinds = [d["kind"] for d in yaml.safe_load_all((SAMPLES / "lifecycle.yaml").read_text())]
    assert {"Model", "TrainingRun", "DriftPolicy"} <= set(kinds)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_sample_is_valid_for_pydantic(document):
    obj = KINDS[document["kind"]].model.model_validate(document)
    assert obj.to_dict()["metadata"]["name"] == document["metadata"]["name"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_sample_is_valid_for_the_crd_schema(document):
    VALIDATORS[document["kind"]].validate(document)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_sample_with_defaults_is_valid_for_the_crd_schema(document):
    """What the operator writes back (defaults filled in) passes the same schema."""
    dumped = KINDS[document["kind"]].model.model_validate(document).to_dict()
    VALIDATORS[document["kind"]].validate(dumped)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_sample_keeps_every_field_through_pydantic(document):
    """Nothing in a sample is dropped by a round trip: what users write is what they get."""
    dumped = KINDS[document["kind"]].model.model_validate(document).to_dict()
    assert contains(dumped["spec"], document["spec"])


def contains(full: Any, part: Any) -> bool:
    """Whether ``full`` has every value of ``part`` (maps may have more keys, for defaults)."""
    if isinstance(part, dict):
        return isinstance(full, dict) and all(
            key in full and contains(full[key], value) for key, value in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(full, list)
            and len(full) == len(part)
            and all(contains(f, p) for f, p in zip(full, part, strict=True))
        )
    return bool(full == part)


def test_templates_in_samples_select_nodes_generally():
    """Samples run on any cluster: no node names, only well-known labels."""
    for path in SAMPLES.glob("*.yaml"):
        text = path.read_text()
        assert "nodeName" not in text
        assert "kubernetes.io/hostname" not in text


def test_the_schema_check_does_catch_a_bad_sample():
    document = copy.deepcopy(
        yaml.safe_load((SAMPLES / "modelops_v1alpha1_modelversion.yaml").read_text())
    )
    document["spec"]["artifact"]["digest"] = "sha256:short"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        VALIDATORS["ModelVersion"].validate(document)
