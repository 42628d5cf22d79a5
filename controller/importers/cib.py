"""cib.xml (Heartbeat 2's and Pacemaker 1.x/2.x's) to the Pacemaker model, through
defusedxml: no DTD, no entity, no external reference is ever expanded."""

from __future__ import annotations

import xml.sax
from dataclasses import dataclass, field
from typing import Any

import defusedxml.sax
from defusedxml import DefusedXmlException

from controller.importers.pcmk_model import (
    Clone,
    Colocation,
    FencingLevel,
    Group,
    Location,
    Op,
    Order,
    Pacemaker,
    Primitive,
    parse_score,
)
from controller.importers.result import ImportFailed, Where

MAX_ELEMENTS = 100_000
MAX_DEPTH = 64  # a CIB nests about 8 deep; the tree is walked recursively


@dataclass
class Node:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[Node] = field(default_factory=list)

    def find(self, tag: str) -> Node | None:
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.tag == tag]

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


class XmlReader:
    """What every reader of an XML file built of Nodes needs: where a node is, and its
    attributes that must be there."""

    def __init__(self, file: str) -> None:
        self.file = file

    def at(self, node: Node) -> Where:
        return Where(self.file, node.line)

    def need(self, node: Node, attr: str) -> str:
        value = node.attrib.get(attr)
        if not value:
            raise self.at(node).fail(f'<{node.tag}> has no {attr}="..."')
        return value


class _Builder(xml.sax.ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.count = 0
        self.locator: Any = None

    def setDocumentLocator(self, locator: Any) -> None:
        self.locator = locator

    def startElement(self, name: str, attrs: Any) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise ImportFailed(f"more than {MAX_ELEMENTS} elements: not a configuration")
        line = self.locator.getLineNumber() if self.locator else 0
        if len(self.stack) >= MAX_DEPTH:
            raise ImportFailed(f"line {line}: elements nested deeper than {MAX_DEPTH} levels")
        node = Node(name, {k: attrs[k] for k in attrs.getNames()}, line)
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def endElement(self, name: str) -> None:
        self.stack.pop()


def parse_xml(text: str, file: str) -> Node:
    """The document's elements with their line numbers; every malformation an error."""
    builder = _Builder()
    try:
        defusedxml.sax.parseString(text.encode("utf-8"), builder)
    except xml.sax.SAXParseException as exc:
        raise ImportFailed(
            f"{file}:{exc.getLineNumber()}: not well-formed XML ({exc.getMessage()}): the "
            "file is truncated or was edited by hand; check it with xmllint"
        ) from None
    except ImportFailed as exc:
        raise ImportFailed(f"{file}:{exc.message.removeprefix('line ')}") from None
    except DefusedXmlException as exc:
        raise ImportFailed(
            f"{file}: refused: the XML declares a DTD, an entity or an external reference "
            f"({type(exc).__name__}), which a configuration never needs"
        ) from None
    if builder.root is None:  # pragma: no cover - expat refuses an empty document
        raise ImportFailed(f"{file}: no XML element")
    return builder.root


def _nvpairs(node: Node | None) -> dict[str, str]:
    """name=value pairs under an attribute set (Heartbeat 2 wraps them in <attributes>)."""
    if node is None:
        return {}
    return {
        n.attrib["name"]: n.attrib.get("value", "")
        for n in node.walk()
        if n.tag == "nvpair" and "name" in n.attrib
    }


def _sets(node: Node, tag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for child in node.all(tag):
        out.update(_nvpairs(child))
    return out


class _Reader(XmlReader):
    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.model = Pacemaker()

    def primitive(self, node: Node) -> Primitive:
        id_ = self.need(node, "id")
        self.model.claim(id_, self.at(node))
        cls = self.need(node, "class")
        if "template" in node.attrib:
            raise self.at(node).fail(f"primitive {id_} uses a template: expand it first")
        p = Primitive(
            id_,
            cls,
            node.attrib.get("provider"),
            self.need(node, "type"),
            self.at(node),
            _sets(node, "instance_attributes"),
            _sets(node, "meta_attributes"),
        )
        operations = node.find("operations")
        for op in operations.all("op") if operations else []:
            p.ops.append(
                Op(
                    self.need(op, "name"),
                    op.attrib.get("interval", "0"),
                    op.attrib.get("timeout"),
                    op.attrib.get("role"),
                    self.at(op),
                )
            )
        self.model.primitives[id_] = p
        return p

    def resources(self, node: Node) -> None:
        for child in node.children:
            if child.tag == "primitive":
                self.primitive(child)
            elif child.tag == "group":
                id_ = self.need(child, "id")
                members = [self.primitive(c).id for c in child.all("primitive")]
                self.model.claim(id_, self.at(child))
                self.model.groups[id_] = Group(
                    id_, members, self.at(child), _sets(child, "meta_attributes")
                )
            elif child.tag in ("clone", "master", "master_slave"):
                id_ = self.need(child, "id")
                meta = _sets(child, "meta_attributes")
                inner = [c for c in child.children if c.tag in ("primitive", "group")]
                if len(inner) != 1:
                    raise self.at(child).fail(f"{child.tag} {id_} must hold one resource")
                if inner[0].tag == "group":
                    self.resources(Node("resources", {}, child.line, inner))
                    inner_id = self.need(inner[0], "id")
                else:
                    inner_id = self.primitive(inner[0]).id
                promotable = child.tag != "clone" or meta.get("promotable", "").lower() in (
                    "true",
                    "yes",
                    "1",
                )
                self.model.claim(id_, self.at(child))
                self.model.clones[id_] = Clone(id_, inner_id, promotable, self.at(child), meta)
            elif child.tag == "bundle":
                self.model.ignored.append(
                    (
                        self.at(child),
                        f"bundle {child.attrib.get('id')}",
                        "Vigil runs no containers "
                        "of its own: run the container runtime as a systemd service",
                    )
                )
            else:
                raise self.at(child).fail(f"<{child.tag}> is not a resource Pacemaker knows")

    def constraints(self, node: Node) -> None:
        for c in node.children:
            where = self.at(c)
            id_ = c.attrib.get("id", "?")
            if c.find("resource_set") is not None:
                self.model.ignored.append(
                    (
                        where,
                        f"{c.tag} {id_}",
                        "resource sets are not imported: write the "
                        "constraint between two resources",
                    )
                )
                continue
            if c.tag == "rsc_location":
                self.location(c, id_, where)
            elif c.tag == "rsc_colocation":
                rsc = c.attrib.get("rsc") or c.attrib.get("from")
                other = c.attrib.get("with-rsc") or c.attrib.get("to")
                if not rsc or not other:
                    raise where.fail(f"colocation {id_} needs rsc and with-rsc")
                self.model.colocations.append(
                    Colocation(
                        id_,
                        rsc,
                        other,
                        parse_score(self.need(c, "score"), where),
                        c.attrib.get("rsc-role") or c.attrib.get("from_role"),
                        c.attrib.get("with-rsc-role") or c.attrib.get("to_role"),
                        where,
                    )
                )
            elif c.tag == "rsc_order":
                self.order(c, id_, where)
            elif c.tag == "rsc_ticket":
                self.model.ignored.append((where, f"rsc_ticket {id_}", "Vigil has no tickets"))
            else:
                raise where.fail(f"<{c.tag}> is not a constraint Pacemaker knows")

    def location(self, c: Node, id_: str, where: Where) -> None:
        rsc = self.need(c, "rsc")
        if "node" in c.attrib:
            score = parse_score(self.need(c, "score"), where)
            loc = Location(id_, rsc, c.attrib["node"], score, c.attrib.get("role"), where)
            self.model.locations.append(loc)
            return
        for rule in c.all("rule"):
            exprs = [e for e in rule.children if e.tag == "expression"]
            simple = (
                len(exprs) == 1
                and len(rule.children) == 1
                and exprs[0].attrib.get("attribute") == "#uname"
                and exprs[0].attrib.get("operation") == "eq"
                and "score" in rule.attrib
            )
            if not simple:
                self.model.ignored.append(
                    (
                        self.at(rule),
                        f"location {id_} rule",
                        "only `#uname eq NODE` rules "
                        "translate: Vigil places groups by node name and score",
                    )
                )
                continue
            self.model.locations.append(
                Location(
                    id_,
                    rsc,
                    exprs[0].attrib.get("value"),
                    parse_score(rule.attrib["score"], self.at(rule)),
                    rule.attrib.get("role"),
                    self.at(rule),
                )
            )

    def order(self, c: Node, id_: str, where: Where) -> None:
        if "first" in c.attrib:
            first, then = self.need(c, "first"), self.need(c, "then")
            first_action, then_action = c.attrib.get("first-action"), c.attrib.get("then-action")
        else:  # Heartbeat 2: `from` starts after `to` unless type="before"
            src, dst = self.need(c, "from"), self.need(c, "to")
            src_action, dst_action = c.attrib.get("action"), c.attrib.get("to_action")
            if c.attrib.get("type", "after") == "before":
                first, then, first_action, then_action = src, dst, src_action, dst_action
            else:
                first, then, first_action, then_action = dst, src, dst_action, src_action
        kind = c.attrib.get("kind", "Mandatory")
        score = c.attrib.get("score")
        mandatory = kind == "Mandatory" and (score is None or parse_score(score, where) > 0)
        self.model.orders.append(
            Order(id_, first, then, first_action, then_action, mandatory, where)
        )


def read_cib(text: str, file: str) -> Pacemaker:
    root = parse_xml(text, file)
    reader = _Reader(file)
    configuration = root.find("configuration") if root.tag == "cib" else None
    if configuration is None:
        raise reader.at(root).fail("not a CIB: expected <cib><configuration>...")
    model = reader.model
    for node in (configuration.find("nodes") or Node("", {}, 0)).all("node"):
        model.nodes[reader.need(node, "uname")] = reader.at(node)
    crm_config = configuration.find("crm_config")
    for prop_set in crm_config.all("cluster_property_set") if crm_config else []:
        for n in prop_set.walk():
            if n.tag == "nvpair" and "name" in n.attrib:
                model.properties[n.attrib["name"]] = (n.attrib.get("value", ""), reader.at(n))
    defaults = configuration.find("rsc_defaults")
    for n in defaults.walk() if defaults else []:
        if n.tag == "nvpair" and "name" in n.attrib:
            model.rsc_defaults[n.attrib["name"]] = (n.attrib.get("value", ""), reader.at(n))
    resources = configuration.find("resources")
    if resources is not None:
        reader.resources(resources)
    constraints = configuration.find("constraints")
    if constraints is not None:
        reader.constraints(constraints)
    topology = configuration.find("fencing-topology")
    for level in topology.all("fencing-level") if topology else []:
        index = reader.need(level, "index")
        if not index.isdigit():
            raise reader.at(level).fail(f"fencing-level index {index!r} is not a number")
        model.levels.append(
            FencingLevel(
                reader.need(level, "target"),
                int(index),
                [d for d in reader.need(level, "devices").split(",") if d],
                reader.at(level),
            )
        )
    for extra in configuration.children:
        if extra.tag in ("op_defaults", "alerts", "tags", "acls"):
            model.ignored.append((reader.at(extra), f"<{extra.tag}>", "not imported"))
    model.check_references()
    return model
