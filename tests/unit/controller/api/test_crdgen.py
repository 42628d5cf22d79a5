"""The CRDs in crds/ match the models, are structural, and accept the example manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, ValidationError

from controller.api import crdgen
from controller.api.meta import GROUP, VERSION, Object
from controller.api.registry import BY_KIND, KINDS
from tests.paths import REPO
from tests.unit.controller.api import k8s_schema

ROOT = REPO
CRD_DIR = ROOT / "crds"
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*/*.yaml"))
REGENERATE = "run `python -m controller.api.crdgen` to regenerate crds/"


def _crd_file(model: type[Object]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CRD_DIR / crdgen.crd_filename(model)).read_text())
    return data


def _openapi(model: type[Object]) -> dict[str, Any]:
    schema: dict[str, Any] = _crd_file(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _example_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in EXAMPLES:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return docs


def _example_params() -> list[Any]:
    return [pytest.param(where, doc, id=where) for where, doc in _example_documents()]


def test_crd_files_match_the_models() -> None:
    wanted = crdgen.generate_crds()
    on_disk = {p.name for p in CRD_DIR.glob(f"*{crdgen.SUFFIX}")}
    assert on_disk == set(wanted), f"crds/ has {sorted(on_disk)}; {REGENERATE}"
    for name, text in wanted.items():
        assert (CRD_DIR / name).read_text() == text, f"crds/{name} is stale; {REGENERATE}"


def test_generation_is_deterministic() -> None:
    assert crdgen.generate_crds() == crdgen.generate_crds()


def test_check_mode_reports_drift_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []
    assert "missing" in capsys.readouterr().err

    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0

    edited = tmp_path / "resourcegroups.ha.vigil.dev.yaml"
    edited.write_text(edited.read_text().replace("Started in order", "Started in any order"))
    stale = tmp_path / "oldthings.ha.vigil.dev.yaml"
    stale.write_text("kind: Old\n")
    capsys.readouterr()
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "resourcegroups.ha.vigil.dev.yaml: differs" in err
    assert "oldthings.ha.vigil.dev.yaml" in err
    assert "python -m controller.api.crdgen" in err
    assert "Started in any order" in edited.read_text()

    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert not stale.exists()
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_crd_names_and_version(model: type[Object]) -> None:
    crd = _crd_file(model)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{model.PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Cluster"
    names = spec["names"]
    assert names["kind"] == model.KIND
    assert names["plural"] == model.PLURAL
    assert names["singular"] == model.KIND.lower()
    assert names["listKind"] == f"{model.KIND}List"
    assert names.get("shortNames", []) == list(model.SHORT_NAMES)
    (version,) = spec["versions"]
    assert version["name"] == VERSION
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_every_kind_has_a_crd_and_names_are_unique() -> None:
    plurals = [m.PLURAL for m in KINDS]
    shorts = [s for m in KINDS for s in m.SHORT_NAMES]
    assert len(set(plurals)) == len(plurals)
    assert len(set(shorts)) == len(shorts)
    assert {crdgen.crd_filename(m) for m in KINDS} == set(crdgen.generate_crds())


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_schema_is_structural(model: type[Object]) -> None:
    problems = k8s_schema.structural_problems(_openapi(model))
    assert problems == []


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_full_kind_schema_is_structural_below_the_root(model: type[Object]) -> None:
    # kind_schema (used by `ha explain`) keeps metadata's real schema; it must be sound too.
    metadata = crdgen.kind_schema(model)["properties"]["metadata"]
    assert k8s_schema.structural_problems(metadata, "metadata", root=False) == []


def test_structural_checker_catches_what_kubernetes_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "description": "not allowed at the root"},
            "a": {"$ref": "#/$defs/A", "description": "ref"},
            "b": {"description": "no type"},
            "c": {"type": "string", "description": "x", "anyOf": [{"type": "string"}]},
            "d": {"type": "array", "description": "no items"},
            "e": {"type": "integer"},
            "f": {"type": "integer", "description": "bad default", "default": "x"},
        },
    }
    text = "\n".join(k8s_schema.structural_problems(bad))
    for expected in (
        "metadata",
        "'$ref'",
        "b: has no type",
        "anyOf[0]: 'type'",
        "needs items",
        "e: no description",
        "f: default",
    ):
        assert expected in text


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_printer_columns_point_at_fields_of_their_type(model: type[Object]) -> None:
    schema = crdgen.kind_schema(model)
    columns = _crd_file(model)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert columns[-1]["name"] == "Age"
    for column in columns:
        node = schema
        for part in column["jsonPath"].lstrip(".").split("."):
            node = node["properties"][part]
        if column["type"] == "date":
            assert node.get("format") == "date-time", column
        elif node.get("x-kubernetes-int-or-string"):
            assert column["type"] == "string", column
        else:
            assert node["type"] == column["type"], column


def test_examples_exist() -> None:
    kinds = {doc["kind"] for _, doc in _example_documents()}
    assert len(EXAMPLES) >= 7
    assert kinds == set(BY_KIND) - {"Node"}


@pytest.mark.parametrize(("where", "doc"), _example_params())
def test_examples_conform_to_the_crd(where: str, doc: dict[str, Any]) -> None:
    model = BY_KIND[doc["kind"]]
    assert k8s_schema.validate(doc, _openapi(model)) == [], where
    assert k8s_schema.validate(doc, crdgen.kind_schema(model)) == [], where


@pytest.mark.parametrize(("where", "doc"), _example_params())
def test_crd_defaults_mean_what_the_model_defaults_mean(where: str, doc: dict[str, Any]) -> None:
    # The API server fills CRD defaults in; the object must read back as the same model.
    model = BY_KIND[doc["kind"]]
    defaulted = k8s_schema.apply_defaults(doc, crdgen.kind_schema(model))
    assert defaulted != doc, f"{where}: no default applied at all"
    assert k8s_schema.validate(defaulted, _openapi(model)) == []
    assert model.model_validate(defaulted) == model.model_validate(doc), where


def test_model_refuses_what_the_crd_cannot_express() -> None:
    # A structural schema cannot say "object or list": the model must not accept a bare
    # argv for probe.exec either, or a manifest valid here would fail on Kubernetes.
    docs = dict(_example_documents())
    doc = copy.deepcopy(docs["deploy/examples/pg/04-group.yaml#0"])
    doc["spec"]["resources"][3]["probe"]["exec"] = ["pg_isready"]
    model = BY_KIND[doc["kind"]]
    assert k8s_schema.validate(doc, _openapi(model)) != []
    with pytest.raises(ValidationError):
        model.model_validate(doc)


def _pg_volume() -> dict[str, Any]:
    docs = dict(_example_documents())
    return copy.deepcopy(docs["deploy/examples/pg/03-volume.yaml#0"])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["spec"].update(protocol="D"), "spec.protocol: 'D' is not one of"),
        (lambda d: d["spec"].update(replcas=[]), "spec.replcas: unknown field"),
        (lambda d: d["spec"]["replicas"].pop(), "fewer than 2 items"),
        (lambda d: d["spec"]["replicas"][0].pop("disk"), "disk is required"),
        (lambda d: d["spec"]["replicas"][0].update(disk="sdb1"), "does not match ^/"),
        (lambda d: d["spec"]["replicas"][0].update(metaDisk="extern"), "anyOf"),
        (lambda d: d["spec"].update(resyncRate="200 MB"), "resyncRate"),
        (lambda d: d["spec"].update(resyncRate=True), "not of type"),
        (lambda d: d["spec"]["network"].update(timeout=5), "spec.network.timeout"),
        (lambda d: d["spec"]["network"].update(timeout="5"), "does not match"),
    ],
)
def test_crd_rejects_bad_volumes(mutate: Any, expected: str) -> None:
    doc = _pg_volume()
    doc["spec"].setdefault("network", {})
    mutate(doc)
    problems = "\n".join(k8s_schema.validate(doc, _openapi(BY_KIND["ReplicatedVolume"])))
    assert expected in problems


@pytest.mark.parametrize("value", [209715200, "200M", "1Gi", "1GiB", "4096"])
def test_size_fields_take_integers_or_strings(value: int | str) -> None:
    doc = _pg_volume()
    doc["spec"]["size"] = value
    assert k8s_schema.validate(doc, _openapi(BY_KIND["ReplicatedVolume"])) == []


def test_meta_disk_takes_internal_or_a_path() -> None:
    schema = _openapi(BY_KIND["ReplicatedVolume"])
    for value in ("internal", "/dev/sdc1"):
        doc = _pg_volume()
        doc["spec"]["replicas"][0]["metaDisk"] = value
        assert k8s_schema.validate(doc, schema) == []


def test_unstructural_union_is_refused_with_the_field_named() -> None:
    raw = {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "x"}
    with pytest.raises(crdgen.CrdError, match=r"Thing\.field"):
        crdgen._convert(raw, {}, "Thing.field")


class _Odd(BaseModel):
    """Constructs the current models do not use, but a future field might."""

    ratio: float = Field(gt=0, lt=1, description="Strictly between 0 and 1.")
    tags: set[str] = Field(default_factory=set, description="Unique tags.")
    peer: IPvAnyAddress = Field(description="An address pydantic gives an unknown format.")
    mode: Literal["a", "b"] | None = Field(default=None, description="Optional literal.")
    fixed: Literal["only"] = Field(default="only", description="A const.")


def test_constructs_kubernetes_spells_differently() -> None:
    schema = crdgen.structural_schema(_Odd)
    props = schema["properties"]
    assert props["ratio"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
        "description": "Strictly between 0 and 1.",
    }
    assert props["tags"]["x-kubernetes-list-type"] == "set"
    assert "uniqueItems" not in props["tags"]
    assert "format" not in props["peer"]
    assert props["mode"] == {
        "type": "string",
        "enum": ["a", "b"],
        "description": "Optional literal.",
    }
    assert props["fixed"]["enum"] == ["only"] and "const" not in props["fixed"]
    assert k8s_schema.structural_problems(schema) == []
    assert k8s_schema.validate({"ratio": 0.5, "peer": "::1", "tags": ["x"]}, schema) == []
    assert "below the minimum" not in str(k8s_schema.validate({"ratio": 0.5, "peer": "x"}, schema))
    assert k8s_schema.validate({"ratio": 0, "peer": "x"}, schema) == [
        "<root>.ratio: 0 is below the minimum 0"
    ]
    assert "duplicate" in str(
        k8s_schema.validate({"ratio": 0.5, "peer": "x", "tags": ["a", "a"]}, schema)
    )


class _Tree(BaseModel):
    children: list[_Tree] = Field(default_factory=list, description="Subtrees.")


def test_recursive_models_are_refused_not_looped_on() -> None:
    with pytest.raises(crdgen.CrdError, match="cannot be recursive"):
        crdgen.structural_schema(_Tree)


class _Either(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["udp"]}, {"required": ["serial"]}]}
    )
    udp: str | None = Field(default=None, description="One way.")
    serial: str | None = Field(default=None, description="The other way.")


def test_exactly_one_of_as_value_validation() -> None:
    # How a model can let the API server enforce its "exactly one of" rule.
    schema = crdgen.structural_schema(_Either)
    assert schema["oneOf"] == [{"required": ["udp"]}, {"required": ["serial"]}]
    assert k8s_schema.structural_problems(schema) == []
    assert k8s_schema.validate({"udp": "x"}, schema) == []
    assert k8s_schema.validate({"udp": "x", "serial": "y"}, schema) != []
    assert k8s_schema.validate({}, schema) != []
