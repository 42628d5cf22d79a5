"""The after-split-brain policies blockrepl implements, by DRBD's names.

One vocabulary for the ``ReplicatedVolume`` API and for blockrepl's command line and
handshake, so that what ``ha apply`` accepts is exactly what a replica can run.
"""

from __future__ import annotations

DISCONNECT = "disconnect"
DISCARD_NODE = "discard-node-"
AFTER_SB_0PRI = (
    "disconnect",
    "discard-younger-primary",
    "discard-older-primary",
    "discard-zero-changes",
    "discard-least-changes",
)
AFTER_SB_1PRI = (
    "disconnect",
    "consensus",
    "violently-as0p",
    "discard-secondary",
    "call-pri-lost-after-sb",
)
AFTER_SB_2PRI = ("disconnect", "violently-as0p", "call-pri-lost-after-sb")
_CHOICES = (AFTER_SB_0PRI, AFTER_SB_1PRI, AFTER_SB_2PRI)


def check_policy(npri: int, value: str) -> str | None:
    """Why ``value`` is not a valid ``--after-sb-{npri}pri``, or None."""
    if npri == 0 and value.startswith(DISCARD_NODE) and len(value) > len(DISCARD_NODE):
        return None
    if value in _CHOICES[npri]:
        return None
    extra = f" or {DISCARD_NODE}NAME" if npri == 0 else ""
    return f"--after-sb-{npri}pri {value!r}: expected one of {', '.join(_CHOICES[npri])}{extra}"
