"""Reading a small YAML settings file into a pydantic model, with errors for people."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from controller.api.decode import problems_from
from controller.api.errors import InputError

M = TypeVar("M", bound=BaseModel)


def read_settings(path: Path, model: type[M], what: str, missing_hint: str = "") -> M:
    """``what`` names the file in messages ("client config"); an empty file is {}."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        hint = f"; {missing_hint}" if missing_hint else ""
        raise InputError(f"{what} {path}: no such file{hint}") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} {path}: expected a mapping of settings")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [f"{p.dotted}: {p.message}" for p in problems_from(exc, model)]
        raise InputError(f"{what} {path}: " + "; ".join(details)) from None
