"""A lab node's payload: a volume served by `blockrepl serve` on the node's own NBD socket
path, mounted by the filesystem actuator as an agent would (run_dir /run/vigil, lib_dir
/var/lib/vigil); then "ready" in /var/lib/vigil and sleep until the node dies. Booted
again on the same disk, it mounts the same filesystem and says what it found in it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from nodeagent.actuators import ActuatorContext
from tests.integration.actuators.fsparts import make, mkfs_volume, served_volume
from tests.integration.actuators.specs import limits

LIB = Path("/var/lib/vigil")


def main() -> None:
    ctx = ActuatorContext(
        resource="grp/fs", run_dir=Path("/run/vigil"), lib_dir=LIB, timeouts=limits(start=30)
    )
    work = LIB / "work"
    work.mkdir(exist_ok=True)
    first_boot = not (work / "vol1.img").exists()
    with served_volume(work, ctx.run_dir, create=first_boot) as sock:
        if first_boot:
            mkfs_volume(work, sock)
        # On the node's private /run: a mount point under / would be made on the host.
        mount_point = ctx.run_dir / "mnt" / "data"
        fs = make(ctx, "volume:vol1", mount_point)
        asyncio.run(fs.start())
        written = mount_point / "written"
        if first_boot:
            written.write_text("before the power loss")
            os.sync()  # what a power loss cannot take any more
            (LIB / "ready").write_text("ready\n")
        else:
            (LIB / "ready").write_text(f"found: {written.read_text()}\n")
        time.sleep(3600)


if __name__ == "__main__":
    main()
