"""`ha explain`: kubectl-explain-like documentation of every field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from controller.api.cluster import Cluster
from controller.api.crdgen import kind_schema
from controller.api.group import Placement, ResourceGroup, ResourceGroupSpec
from controller.api.meta import API_VERSION
from controller.api.registry import KINDS, UnknownKindError
from controller.api.volume import SplitBrainPolicy
from controller.cli.explain import UnknownFieldError, explain, locate, type_name


def _doc(model: type[BaseModel], field: str) -> str:
    text = model.model_fields[field].description
    assert text
    return text


def _field_lines(text: str) -> list[str]:
    return text.split("FIELDS:\n", 1)[1].splitlines() if "FIELDS:\n" in text else []


def test_kind_overview() -> None:
    text = explain("resourcegroup")
    assert text.startswith(f"KIND:     ResourceGroup\nVERSION:  {API_VERSION}\n")
    assert "FIELD:" not in text
    assert _doc(ResourceGroup, "kind") in text
    fields = [line.strip() for line in _field_lines(text) if line.startswith("  ") and "\t" in line]
    assert fields == [
        "apiVersion\t<string> -required-",
        "kind\t<string> -required-",
        "metadata\t<Object> -required-",
        "spec\t<Object> -required-",
        "status\t<Object>",
    ]


@pytest.mark.parametrize("name", ["rg", "RG", "resourcegroups", "ResourceGroup", "group"])
def test_kind_names_all_resolve(name: str) -> None:
    assert explain(f"{name}.spec") == explain("resourcegroup.spec")


def test_nested_object_field() -> None:
    text = explain("rg.spec.placement")
    assert "FIELD:    spec.placement <Object>\n" in text
    assert _doc(ResourceGroupSpec, "placement") in text
    lines = _field_lines(text)
    assert "  nodes\t<[]Object>" in lines
    assert "  stickiness\t<integer>" in lines
    assert "  moveTo\t<Object>" in lines
    # Each child is followed by the first line of its description.
    index = lines.index("  restricted\t<boolean>")
    assert lines[index + 1].strip() == _doc(Placement, "restricted")


def test_field_with_default_and_no_children() -> None:
    text = explain("ReplicatedVolume.spec.splitBrain.afterSB0Pri")
    assert "FIELD:    spec.splitBrain.afterSB0Pri <string>" in text
    assert _doc(SplitBrainPolicy, "after_sb_0pri") in text
    assert "DEFAULT: disconnect" in text
    assert "FIELDS:" not in text


def test_enum_lists_allowed_values() -> None:
    text = explain("rv.spec.protocol")
    assert "ALLOWED VALUES: A, B, C" in text
    assert "DEFAULT: C" in text
    assert "ALLOWED VALUES: internal, a value matching ^/" in explain("rv.spec.replicas.metaDisk")


@pytest.mark.parametrize(
    ("path", "type_", "default"),
    [
        ("cluster.spec.timing.deadtime", "duration", "900ms"),
        ("rv.spec.network.keepalive", "duration", "500ms"),
        ("rv.spec.resyncRate", "size", "200M"),
        ("rv.spec.size", "size", None),
        ("fd.spec.options", "map[string]string", None),
        ("fd.spec.hostMap", "map[string]string", None),
        ("rg.spec.dependsOn", "[]string", None),
        ("rg.spec.resources", "[]Object", None),
        ("fd.spec.level", "integer", "1"),
        ("cluster.spec.nodes.heartbeat.serial.baud", "integer", "115200"),
    ],
)
def test_types_and_defaults(path: str, type_: str, default: str | None) -> None:
    text = explain(path)
    field = path.split(".", 1)[1]
    assert f"FIELD:    {field} <{type_}>\n" in text
    if default is None:
        assert "DEFAULT:" not in text
    else:
        assert f"DEFAULT: {default}\n" in text


def test_units_and_ranges_are_explained() -> None:
    assert "FORMAT: a number with a unit" in explain("rg.spec.failureTimeout")
    assert "RANGE: from 1 to 65535" in explain("fd.spec.port")
    assert "ITEMS: 2 to 2" in explain("rv.spec.replicas")


def test_required_markers_follow_the_model() -> None:
    lines = _field_lines(explain("rg.spec"))
    for name, field in ResourceGroupSpec.model_fields.items():
        alias = field.alias or name
        line = next(line for line in lines if line.startswith(f"  {alias}\t"))
        assert line.endswith("-required-") == field.is_required(), line


def test_descends_through_lists() -> None:
    text = explain("rg.spec.resources.service.exec.command")
    assert "FIELD:    spec.resources.service.exec.command <[]string>" in text


def test_case_insensitive_names_show_the_real_spelling() -> None:
    text = explain("rv.spec.splitbrain.aftersb0pri")
    assert "FIELD:    spec.splitBrain.afterSB0Pri <string>" in text


def test_unknown_field_names_the_part_suggests_and_lists() -> None:
    with pytest.raises(UnknownFieldError) as info:
        explain("rg.spec.placment.nodes")
    error = info.value
    assert isinstance(error, ValueError)
    assert error.part == "placment"
    assert error.valid == [f.alias or n for n, f in ResourceGroupSpec.model_fields.items()]
    message = str(error)
    assert "'placment'" in message
    assert "ResourceGroup.spec" in message
    assert "Did you mean 'placement'?" in message
    assert "migrationThreshold" in message


def test_unknown_field_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(UnknownFieldError) as info:
        explain("rv.spec.zzzzzz")
    assert "Did you mean" not in str(info.value)
    assert info.value.part == "zzzzzz"
    assert "splitBrain, network" in str(info.value)


def test_scalar_has_no_fields() -> None:
    with pytest.raises(UnknownFieldError, match=r"spec\.enabled is a <boolean> and has no fields"):
        explain("rg.spec.enabled.more")


@pytest.mark.parametrize("path", ["", "  ", "rg..spec", "rg.spec."])
def test_malformed_paths(path: str) -> None:
    with pytest.raises(ValueError, match=r"empty field name|nothing to explain"):
        explain(path)


def test_unknown_kind() -> None:
    with pytest.raises(UnknownKindError, match="known kinds"):
        explain("widget.spec")


def _paths(schema: dict[str, Any], prefix: str) -> Iterator[str]:
    while schema.get("type") == "array":
        schema = schema["items"]
    for name, child in schema.get("properties", {}).items():
        yield f"{prefix}.{name}"
        yield from _paths(child, f"{prefix}.{name}")


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_every_field_of_every_kind_is_explainable(model: Any) -> None:
    paths = list(_paths(kind_schema(model), model.KIND))
    assert len(paths) > 5
    for path in paths:
        text = explain(path)
        found = locate(path)
        assert f"FIELD:    {path.split('.', 1)[1]} <{type_name(found.schema)}>" in text
        assert "None" not in type_name(found.schema)
        assert "(no description)" not in text


def test_recursive_prints_the_whole_tree_indented() -> None:
    text = explain("rg.spec", recursive=True)
    lines = _field_lines(text)
    assert "  resources\t<[]Object> -required-" in lines
    assert "    service\t<Object>" in lines
    assert "      exec\t<Object>" in lines
    assert "        command\t<[]string> -required-" in lines
    # Every field below spec appears once per place it occurs, and no descriptions.
    expected = len(list(_paths(kind_schema(ResourceGroup)["properties"]["spec"], "")))
    assert len(lines) == expected
    assert _doc(ResourceGroupSpec, "enabled") not in text.split("FIELDS:")[1]


def test_recursive_on_a_leaf_is_just_the_field() -> None:
    assert explain("cluster.spec.quorum.mode", recursive=True) == explain(
        "cluster.spec.quorum.mode"
    )
    assert "two-node" in explain("cluster.spec.quorum.mode")
    assert Cluster.KIND in explain("cluster.spec.quorum.mode")


def test_exactly_one_of_rule_is_shown() -> None:
    from controller.cli.explain import _constraints

    schema = {
        "type": "object",
        "properties": {"udp": {"type": "string"}, "serial": {"type": "string"}},
        "oneOf": [{"required": ["udp"]}, {"required": ["serial"]}],
    }
    assert "EXACTLY ONE OF: udp, serial" in _constraints(schema)
