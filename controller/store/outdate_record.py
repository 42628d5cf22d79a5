"""``volumes/<volume>/outdated``: blockrepl's record that one replica missed writes. Pure.

blockrepl writes it (``blockrepl/outdate.py``, ``StoreOutdater``): a Primary that lost its
peer names the peer Outdated before it acknowledges another write, so that the peer is
never promoted with old data. The controller only reads it, to keep groups off such a
replica and to show it; so this reader lives in the store layer, which blockrepl may
import and the controller may read (blockrepl sits above the control plane).

The JSON is blockrepl's::

    {"volume": V, "outdated": X, "generation": "<16 hex>", "by": Y,
     "since": ISO-8601, "updated": ISO-8601}

read "replica X is Outdated: it missed the writes of generation G; written by Y".
Unlike blockrepl's own decoder, this one never raises: a record the controller cannot
read still names a replica that may be Outdated, so it is kept, marked unreadable, and
counts against that replica (or, with no replica named, against both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutdateRecord:
    volume: str
    outdated: str  # the replica (node) that missed writes; "" when the record is unreadable
    generation: str  # 16 hex digits, as blockrepl writes it
    by: str  # the replica (node) that wrote the record: the Primary that lost its peer
    since: str = ""
    updated: str = ""
    problem: str = ""  # why the record could not be read, "" when it could

    def names(self, node: str) -> bool:
        """Whether this record may mean ``node``'s data is Outdated."""
        return self.outdated == node or not self.outdated

    def describe(self) -> str:
        """``Outdated since generation 00AB... (record by n1)``, for reasons and status."""
        if self.problem:
            return f"outdate record unreadable ({self.problem})"
        return f"Outdated since generation {self.generation} (record by {self.by})"

    @classmethod
    def from_dict(cls, volume: str, data: Mapping[str, Any]) -> OutdateRecord:
        """Read what blockrepl wrote; never raises (see the module's docstring)."""
        outdated = data.get("outdated")
        by = data.get("by")
        generation = data.get("generation")
        since = str(data.get("since") or "")
        problem = ""
        if not isinstance(outdated, str) or not outdated:
            problem = "no replica named in 'outdated'"
        elif not isinstance(by, str) or not by:
            problem = "no writer named in 'by'"
        elif not _is_hex(generation):
            problem = f"generation {generation!r} is not hexadecimal"
        return cls(
            volume=str(data.get("volume") or volume),
            outdated=outdated if isinstance(outdated, str) else "",
            generation=str(generation).upper() if _is_hex(generation) else str(generation or ""),
            by=by if isinstance(by, str) else "",
            since=since,
            updated=str(data.get("updated") or since),
            problem=problem,
        )


def _is_hex(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True
