"""Actuators made the way the reconciler makes them: from a typed resource spec."""

from __future__ import annotations

from datetime import timedelta

from controller.api.group import Resource, Timeouts
from nodeagent.actuators import Actuator, ActuatorContext, default_registry


def create(resource: dict[str, object], ctx: ActuatorContext) -> Actuator:
    return default_registry.create(Resource.model_validate(resource), ctx)


def limits(**seconds: float) -> Timeouts:
    return Timeouts(**{name: timedelta(seconds=value) for name, value in seconds.items()})
