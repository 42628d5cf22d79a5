"""The kinds of the API and how users may name them on the command line."""

from __future__ import annotations

from controller.api.cluster import Cluster
from controller.api.fencing import FenceDevice
from controller.api.group import ResourceGroup
from controller.api.meta import Object
from controller.api.node import Node
from controller.api.volume import ReplicatedVolume

# Order matters: apply creates in this order and deletes in reverse, so that
# references (group -> volume -> cluster nodes) always point at something.
KINDS: tuple[type[Object], ...] = (Cluster, Node, FenceDevice, ReplicatedVolume, ResourceGroup)
BY_KIND: dict[str, type[Object]] = {model.KIND: model for model in KINDS}


class UnknownKindError(ValueError):
    pass


def _names(model: type[Object]) -> set[str]:
    kind = model.KIND.lower()
    return {kind, kind + "s", model.PLURAL, *model.SHORT_NAMES, *model.ALIASES}


def resolve_kind(text: str) -> type[Object]:
    """``rg``, ``groups``, ``ResourceGroup`` -> the ResourceGroup model."""
    wanted = text.lower()
    for model in KINDS:
        if wanted in _names(model):
            return model
    known = ", ".join(
        f"{m.KIND} ({', '.join(sorted(_names(m) - {m.KIND.lower()}))})" for m in KINDS
    )
    raise UnknownKindError(f"unknown kind {text!r}; known kinds: {known}")


def kind_order(kind: str) -> int:
    return next(i for i, model in enumerate(KINDS) if kind == model.KIND)
