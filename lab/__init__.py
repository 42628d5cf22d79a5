"""Vigil lab: a real multi-node cluster on one machine, built from Linux namespaces."""

from lab.core import Lab, LabNodeState
from lab.errors import LabError
from lab.names import CLIENT

__all__ = ["CLIENT", "Lab", "LabError", "LabNodeState"]
