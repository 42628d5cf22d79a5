"""An operator's intent, set by a command, survives an apply that does not mention it. Pure.

`ha move` writes `spec.placement.moveTo` and `ha standby` writes a Node's `spec.standby`
into the stored specs, so that they are declarative and expire by themselves. Applying the
manifest the group or node came from would otherwise silently cancel them: the file never
had the field. So, as kubectl's apply keeps fields another manager set, a field absent from
the applied document keeps its stored value; a document that sets it (even to null or
false) decides. An expired move is not kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.api.group import ResourceGroup
from controller.api.meta import Object
from controller.api.node import Node


def _absent(document: Mapping[str, Any] | None, *path: str) -> bool:
    node: Any = document
    for key in path[:-1]:
        if not isinstance(node, Mapping):
            return True
        node = node.get(key)
    return not isinstance(node, Mapping) or path[-1] not in node


def keep_intent(
    obj: Object, document: Mapping[str, Any] | None, stored: Object, now: datetime
) -> tuple[Object, list[str]]:
    """``obj`` with the intent ``stored`` carries that ``document`` leaves unsaid, and a
    sentence for each intent kept (what `ha apply` prints)."""
    if isinstance(obj, ResourceGroup) and isinstance(stored, ResourceGroup):
        move = stored.spec.placement.move_to
        active = move is not None and (move.until is None or move.until > now)
        if move is not None and active and _absent(document, "spec", "placement", "moveTo"):
            placement = obj.spec.placement.model_copy(update={"move_to": move})
            spec = obj.spec.model_copy(update={"placement": placement})
            until = f" until {move.until.isoformat()}" if move.until else ""
            return obj.model_copy(update={"spec": spec}), [f"ha move to {move.node}{until}"]
    standby = isinstance(stored, Node) and stored.spec.standby
    if isinstance(obj, Node) and standby and _absent(document, "spec", "standby"):
        node_spec = obj.spec.model_copy(update={"standby": True})
        return obj.model_copy(update={"spec": node_spec}), ["ha standby"]
    return obj, []
