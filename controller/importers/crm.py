"""The crm shell's configuration syntax (`crm configure show`) to the Pacemaker model."""

from __future__ import annotations

import re
import shlex

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
from controller.importers.result import Where
from controller.importers.sources import Line, logical_lines

_SCORE = re.compile(r"^([-+]?(?:\d+|inf|INFINITY|infinity)|Mandatory|Optional|Serialize):$")


def _pairs(words: list[str], where: Where) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise where.fail(f"{word!r}: expected name=value")
        out[key] = value
    return out


def _sections(words: list[str], keywords: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """`params a=1 meta b=2 op monitor interval=10s` -> [(params, [a=1]), (meta, ...), ...]."""
    out: list[tuple[str, list[str]]] = []
    for word in words:
        if word in keywords:
            out.append((word, []))
        elif out:
            out[-1][1].append(word)
        else:
            out.append(("", [word]))
    return out


def _ref(value: str) -> tuple[str, str | None]:
    rsc, _, role = value.partition(":")
    return rsc, role or None


class _Reader:
    def __init__(self) -> None:
        self.model = Pacemaker()

    def line(self, line: Line) -> None:
        where = line.where
        try:
            words = shlex.split(line.text, comments=False)
        except ValueError as exc:
            raise where.fail(f"cannot split the line ({exc}): a quote is not closed") from None
        command, args = words[0], words[1:]
        handler = getattr(self, "do_" + command.replace("-", "_"), None)
        if handler is None:
            raise where.fail(f"{command!r} is not a crm configure command Vigil reads")
        if not args and command not in ("property", "rsc_defaults"):
            raise where.fail(f"{command} needs arguments")
        handler(args, where)

    def do_node(self, args: list[str], where: Where) -> None:
        names = [a for a in args if not a.startswith("$") and "=" not in a]
        if not names:
            raise where.fail("node names no node")
        self.model.nodes[names[0].split(":", 1)[0]] = where

    def do_primitive(self, args: list[str], where: Where) -> None:
        if len(args) < 2:
            raise where.fail("primitive ID CLASS:PROVIDER:TYPE [params ...] [meta ...] [op ...]")
        id_, agent = args[0], args[1]
        self.model.claim(id_, where)
        parts = agent.split(":")
        if len(parts) == 3:
            cls, provider, type_ = parts
        elif len(parts) == 2:
            cls, provider, type_ = parts[0], None, parts[1]
        else:
            raise where.fail(f"primitive {id_}: {agent!r} is not CLASS:[PROVIDER:]TYPE")
        p = Primitive(id_, cls, provider, type_, where)
        for keyword, words in _sections(args[2:], ("params", "meta", "op", "utilization")):
            if keyword == "params":
                p.params.update(_pairs(words, where))
            elif keyword == "meta":
                p.meta.update(_pairs(words, where))
            elif keyword == "op":
                if not words:
                    raise where.fail(f"primitive {id_}: op without a name")
                attrs = _pairs(words[1:], where)
                p.ops.append(
                    Op(
                        words[0],
                        attrs.get("interval", "0"),
                        attrs.get("timeout"),
                        attrs.get("role"),
                        where,
                    )
                )
            elif keyword == "utilization":
                self.model.ignored.append((where, f"{id_} utilization", "not imported"))
            else:
                raise where.fail(f"primitive {id_}: unexpected {' '.join(words)!r}")
        self.model.primitives[id_] = p

    def do_group(self, args: list[str], where: Where) -> None:
        id_ = args[0]
        self.model.claim(id_, where)
        sections = _sections(args[1:], ("meta", "params", "description"))
        members = sections[0][1] if sections and sections[0][0] == "" else []
        meta: dict[str, str] = {}
        for keyword, words in sections:
            if keyword == "meta":
                meta.update(_pairs(words, where))
        if not members:
            raise where.fail(f"group {id_} has no member")
        self.model.groups[id_] = Group(id_, members, where, meta)

    def _clone(self, args: list[str], where: Where, promotable: bool) -> None:
        if len(args) < 2:
            raise where.fail("clone ID RESOURCE [meta ...]")
        id_, child = args[0], args[1]
        self.model.claim(id_, where)
        meta: dict[str, str] = {}
        for keyword, words in _sections(args[2:], ("meta", "params")):
            if keyword == "meta":
                meta.update(_pairs(words, where))
        if meta.get("promotable", "").lower() in ("true", "yes", "1"):
            promotable = True
        self.model.clones[id_] = Clone(id_, child, promotable, where, meta)

    def do_ms(self, args: list[str], where: Where) -> None:
        self._clone(args, where, True)

    do_master = do_ms

    def do_clone(self, args: list[str], where: Where) -> None:
        self._clone(args, where, False)

    def do_location(self, args: list[str], where: Where) -> None:
        if len(args) < 3:
            raise where.fail("location ID RESOURCE SCORE: NODE")
        id_, rsc, rest = args[0], args[1], args[2:]
        role = None
        if rest[0] == "rule":
            rest = rest[1:]
            if rest and rest[0].startswith("role="):
                role, rest = rest[0].split("=", 1)[1], rest[1:]
            simple = len(rest) == 4 and rest[1] == "#uname" and rest[2] == "eq"
            if not simple or not _SCORE.match(rest[0]):
                self.model.ignored.append(
                    (where, f"location {id_} rule", "only `SCORE: #uname eq NODE` rules translate")
                )
                return
            score, node = rest[0][:-1], rest[3]
        else:
            if rest[0].startswith("role="):
                role, rest = rest[0].split("=", 1)[1], rest[1:]
            if len(rest) != 2 or not _SCORE.match(rest[0]):
                raise where.fail(f"location {id_}: expected SCORE: NODE after the resource")
            score, node = rest[0][:-1], rest[1]
        self.model.locations.append(
            Location(id_, rsc, node, parse_score(score, where), role, where)
        )

    def do_colocation(self, args: list[str], where: Where) -> None:
        if len(args) < 3 or not _SCORE.match(args[1]):
            raise where.fail("colocation ID SCORE: RESOURCE WITH-RESOURCE")
        refs = args[2:]
        if len(refs) != 2 or any(r in ("(", ")", "[", "]") for r in refs):
            self.model.ignored.append(
                (
                    where,
                    f"colocation {args[0]}",
                    "resource sets are not imported: write the constraint between two resources",
                )
            )
            return
        (rsc, rsc_role), (other, other_role) = _ref(refs[0]), _ref(refs[1])
        self.model.colocations.append(
            Colocation(
                args[0], rsc, other, parse_score(args[1][:-1], where), rsc_role, other_role, where
            )
        )

    def do_order(self, args: list[str], where: Where) -> None:
        if len(args) < 3 or not _SCORE.match(args[1]):
            raise where.fail("order ID SCORE|KIND: FIRST[:ACTION] THEN[:ACTION]")
        refs = [r for r in args[2:] if not r.startswith("symmetrical=")]
        if len(refs) != 2:
            self.model.ignored.append(
                (
                    where,
                    f"order {args[0]}",
                    "resource sets are not imported: write the order between two resources",
                )
            )
            return
        kind = args[1][:-1]
        mandatory = kind == "Mandatory" or (
            kind not in ("Optional", "Serialize") and parse_score(kind, where) > 0
        )
        (first, first_action), (then, then_action) = _ref(refs[0]), _ref(refs[1])
        self.model.orders.append(
            Order(args[0], first, then, first_action, then_action, mandatory, where)
        )

    def do_property(self, args: list[str], where: Where) -> None:
        for key, value in _pairs([a for a in args if not a.startswith("$")], where).items():
            self.model.properties[key] = (value, where)

    def do_rsc_defaults(self, args: list[str], where: Where) -> None:
        for key, value in _pairs([a for a in args if not a.startswith("$")], where).items():
            self.model.rsc_defaults[key] = (value, where)

    def do_op_defaults(self, args: list[str], where: Where) -> None:
        self.model.ignored.append((where, "op_defaults", "not imported"))

    def do_fencing_topology(self, args: list[str], where: Where) -> None:
        target: str | None = None
        index = 0
        for word in args:
            if word.endswith(":"):
                target, index = word[:-1], 0
                continue
            index += 1
            devices = [d for d in word.split(",") if d]
            for node in [target] if target else list(self.model.nodes):
                self.model.levels.append(FencingLevel(node, index, devices, where))


def read_crm(text: str, file: str) -> Pacemaker:
    reader = _Reader()
    lines = logical_lines(text, file, inline_comments=False)
    if not lines:
        raise Where(file).fail("no crm configuration in it")
    for line in lines:
        reader.line(line)
    reader.model.check_references()
    return reader.model
