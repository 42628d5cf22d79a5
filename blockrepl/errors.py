"""Typed errors raised by blockrepl; every message names the field/byte at fault and the fix."""

from __future__ import annotations


class BlockReplError(Exception):
    """Base class for all blockrepl errors."""


class MetadataError(BlockReplError):
    """The metadata area cannot be used (absent, corrupt, truncated or inconsistent)."""


class NoMetadataError(MetadataError):
    """No blockrepl metadata at the expected place (never created, or overwritten)."""


class MetadataCorruptError(MetadataError):
    """Metadata is present but every copy of some structure fails validation."""


class GeometryError(MetadataError):
    """Sizes/offsets do not fit (device too small, truncated, resized)."""


class RoleError(BlockReplError):
    """A role change was refused (e.g. promoting an Inconsistent disk without --force)."""
