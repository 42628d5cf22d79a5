"""Actuators: observe, start and stop one resource on this node.

Importing this package registers the built-in kinds in `default_registry`:
`ip` (VipActuator) and `service` with variants systemd, lsb, ocf and exec.
New kinds (volume, filesystem) register themselves with `@register("kind")`.
"""

from nodeagent.actuators import service_exec, service_lsb, service_ocf, service_systemd, vip
from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    ActuatorError,
    ActuatorRegistry,
    ConfigError,
    Observation,
    State,
    Timeouts,
    default_registry,
    register,
)

__all__ = [
    "Actuator",
    "ActuatorContext",
    "ActuatorError",
    "ActuatorRegistry",
    "ConfigError",
    "Observation",
    "State",
    "Timeouts",
    "default_registry",
    "register",
    "service_exec",
    "service_lsb",
    "service_ocf",
    "service_systemd",
    "vip",
]
