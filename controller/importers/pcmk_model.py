"""The Pacemaker configuration as both readers see it: cib.xml (`cib.py`) and the crm shell
syntax (`crm.py`) fill these, and `pcmk_map.py` turns them into Vigil objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.importers.result import ImportFailed, Where

INFINITY = 1_000_000


def parse_score(value: str, where: Where) -> int:
    text = value.strip().lower().removeprefix("+")
    if text in ("inf", "infinity"):
        return INFINITY
    if text in ("-inf", "-infinity"):
        return -INFINITY
    try:
        score = int(text)
    except ValueError:
        raise where.fail(f"score {value!r} is not a number, INFINITY or -INFINITY") from None
    return max(-INFINITY, min(INFINITY, score))


@dataclass
class Op:
    name: str
    interval: str
    timeout: str | None
    role: str | None
    where: Where


@dataclass
class Primitive:
    id: str
    cls: str  # ocf, lsb, systemd, stonith, service, heartbeat
    provider: str | None
    type: str
    where: Where
    params: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)

    @property
    def agent(self) -> str:
        provider = f"{self.provider}:" if self.provider else ""
        return f"{self.cls}:{provider}{self.type}"


@dataclass
class Group:
    id: str
    members: list[str]
    where: Where
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Clone:
    id: str
    child: str
    promotable: bool
    where: Where
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Location:
    id: str
    rsc: str
    node: str | None  # None: a rule Vigil cannot read
    score: int
    role: str | None
    where: Where


@dataclass
class Colocation:
    id: str
    rsc: str
    with_rsc: str
    score: int
    rsc_role: str | None
    with_role: str | None
    where: Where


@dataclass
class Order:
    id: str
    first: str
    then: str
    first_action: str | None
    then_action: str | None
    mandatory: bool
    where: Where


@dataclass
class FencingLevel:
    target: str
    index: int
    devices: list[str]
    where: Where


@dataclass
class Pacemaker:
    nodes: dict[str, Where] = field(default_factory=dict)
    primitives: dict[str, Primitive] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    clones: dict[str, Clone] = field(default_factory=dict)
    locations: list[Location] = field(default_factory=list)
    colocations: list[Colocation] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    levels: list[FencingLevel] = field(default_factory=list)
    properties: dict[str, tuple[str, Where]] = field(default_factory=dict)
    rsc_defaults: dict[str, tuple[str, Where]] = field(default_factory=dict)
    # What the readers met and did not understand, for a note each.
    ignored: list[tuple[Where, str, str]] = field(default_factory=list)

    def ids(self) -> set[str]:
        return {*self.primitives, *self.groups, *self.clones}

    def claim(self, id_: str, where: Where) -> None:
        """Refuse a second object with the same id, as Pacemaker does."""
        if id_ in self.ids():
            raise ImportFailed(f"{where}: id {id_!r} is used twice: ids must be unique")

    def check_references(self) -> None:
        known = self.ids()
        for group in self.groups.values():
            for member in group.members:
                if member not in self.primitives:
                    raise group.where.fail(
                        f"group {group.id} names {member!r}, which is not a primitive"
                    )
        for clone in self.clones.values():
            if clone.child not in self.primitives and clone.child not in self.groups:
                raise clone.where.fail(f"{clone.id} clones {clone.child!r}, which is not defined")
        for c in self.colocations:
            for ref in (c.rsc, c.with_rsc):
                if ref not in known:
                    raise c.where.fail(f"colocation {c.id} names {ref!r}, which is not defined")
        for o in self.orders:
            for ref in (o.first, o.then):
                if ref not in known:
                    raise o.where.fail(f"order {o.id} names {ref!r}, which is not defined")
        for loc in self.locations:
            if loc.rsc not in known:
                raise loc.where.fail(f"location {loc.id} names {loc.rsc!r}, which is not defined")
        for level in self.levels:
            for device in level.devices:
                if device not in self.primitives:
                    raise level.where.fail(
                        f"fencing level {level.index} of {level.target} names {device!r}, "
                        "which is not defined"
                    )
