"""FenceDevice objects for the fencing tests, as an operator would write them."""

from __future__ import annotations

from typing import Any

from controller.api.fencing import FenceDevice


def device(name: str = "fd1", **spec: Any) -> FenceDevice:
    body: dict[str, Any] = {"agent": "exec", "targets": ["n1"]}
    body.update(spec)
    return FenceDevice.model_validate(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "FenceDevice",
            "metadata": {"name": name},
            "spec": body,
        }
    )
