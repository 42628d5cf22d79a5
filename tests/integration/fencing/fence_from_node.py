"""Run fence actions as a node's leader would, from inside a lab node: prints one JSON
outcome per action. argv: DEVICE_JSON TARGET ACTION..."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from controller.api.fencing import FenceDevice
from nodeagent.fencing import run_fence_action


async def main(argv: list[str]) -> None:
    device = FenceDevice.model_validate_json(argv[0])
    for action in argv[2:]:
        outcome = await run_fence_action(device, argv[1], action)  # type: ignore[arg-type]
        print(json.dumps(dataclasses.asdict(outcome)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
