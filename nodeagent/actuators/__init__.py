"""Actuators: observe, start and stop one resource on this node.

Importing this package registers the built-in kinds in `default_registry`:
`ip` (VipActuator), `volume` (promote a replica), `filesystem` (FilesystemActuator) and
`service` with variants systemd, lsb, ocf and exec. New kinds register themselves with
`@register("kind")`; each factory receives the typed `Resource` (controller/api/group.py):
one schema from YAML to the node.
"""

from nodeagent.actuators import (
    filesystem,
    service_exec,
    service_lsb,
    service_ocf,
    service_systemd,
    vip,
    volume,
)
from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    ActuatorError,
    ActuatorRegistry,
    NoActuatorError,
    default_registry,
    register,
)
from nodeagent.observation import Observation, State

__all__ = [
    "Actuator",
    "ActuatorContext",
    "ActuatorError",
    "ActuatorRegistry",
    "NoActuatorError",
    "Observation",
    "State",
    "default_registry",
    "filesystem",
    "register",
    "service_exec",
    "service_lsb",
    "service_ocf",
    "service_systemd",
    "vip",
    "volume",
]
