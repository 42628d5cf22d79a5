"""PostgreSQL on a replicated volume in a Vigil lab: the one-time set-up of the database on
the volume, the group that runs it (volume, filesystem, PostgreSQL, VIP), and the client
that commits numbered rows through the VIP (lab/pg_client.py) with what it saw.

The set-up is what an administrator does once by hand with DRBD: make the filesystem on
the new device and initdb on it. After that the cluster alone promotes, mounts, starts and
moves it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError

if TYPE_CHECKING:
    from lab.cluster import VigilLab

MOUNT_POINT = "/var/lib/vigil/mnt/pg"
PORT = 5432
BLOCKREPL = str(Path(sys.executable).parent / "blockrepl")


def pg_bin() -> Path:
    """The newest PostgreSQL server installed from Debian's packages."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if not found:
        raise LabError("no PostgreSQL server: apt-get install postgresql")
    return found[-1].parent


_PREPARE = r"""
set -eu
V={volume}; MP={mount}; CTL=/run/vigil/volumes/$V/control.sock
W=/run/vigil/pg-setup; mkdir -p $W/fuse "$MP"
{blockrepl} promote --control $CTL >/dev/null
nbdfuse -P $W/nbdfuse.pid $W/fuse/disk --unix /run/vigil/volumes/$V/nbd.sock &
i=0; while [ ! -s $W/nbdfuse.pid ]; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.05; done
LOOP=$(losetup -f --show --direct-io=on $W/fuse/disk)
mkfs.ext4 -q -F "$LOOP"
mount "$LOOP" "$MP"
install -d -o postgres -g postgres -m 700 "$MP/data"
setpriv --reuid=postgres --regid=postgres --init-groups -- \
  {bin}/initdb -D "$MP/data" -U postgres -A trust >/dev/null
echo "host all all 0.0.0.0/0 trust" >> "$MP/data/pg_hba.conf"
sync
umount "$MP"
losetup -d "$LOOP"
i=0; while [ -n "$(losetup -j $W/fuse/disk)" ]; do
  i=$((i+1)); [ $i -lt 600 ] || exit 4; sleep 0.1
done
fusermount3 -u $W/fuse
wait
{blockrepl} demote --control $CTL >/dev/null
"""


def prepare(vlab: VigilLab, volume: str, node: str, mount: str = MOUNT_POINT) -> None:
    """ext4 on the volume and a database cluster in it, made on `node`, which must hold an
    UpToDate replica; the volume is Secondary again afterwards."""
    script = _PREPARE.format(volume=volume, mount=mount, blockrepl=BLOCKREPL, bin=pg_bin())
    proc = vlab.lab.exec_in(node, ["sh", "-c", script], timeout=180)
    if proc.returncode != 0:
        raise LabError(f"preparing PostgreSQL on {volume} at {node}: {proc.stderr.strip()}")


def group_manifest(
    vlab: VigilLab,
    volume: str,
    nodes: tuple[str, str],
    name: str = "pg",
    host: int = 100,
    mount: str = MOUNT_POINT,
) -> str:
    """The seed scenario's group: the volume Primary, its filesystem, PostgreSQL, the VIP."""
    return f"""apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {{name: {name}}}
spec:
  placement:
    nodes: [{{name: {nodes[0]}, score: 100}}, {{name: {nodes[1]}, score: 50}}]
    restricted: true
    stickiness: 100
  resources:
    - volume: {{name: {volume}}}
    - filesystem: {{device: "volume:{volume}", mountPoint: {mount}, fsType: ext4}}
    - name: postgresql
      service:
        exec:
          command: [setpriv, --reuid=postgres, --regid=postgres, --init-groups, --,
                    {pg_bin()}/postgres, -D, {mount}/data, -c, "listen_addresses=*",
                    -c, "unix_socket_directories=", -c, "port={PORT}"]
          stopSignal: SIGINT
          stopTimeout: 5s
      probe: {{tcp: {{port: {PORT}}}, period: 1s, timeout: 500ms, failureThreshold: 3}}
    - ip: {{address: {vlab.vip(host)}/24, interface: eth0, arp: {{count: 3, interval: 50ms}}}}
"""


@dataclass
class Line:
    time: float
    what: str  # ok, err, down, conn
    n: int | None
    detail: str = ""
    server: str = ""  # the PostgreSQL instance the client was connected to


class CommitClient:
    """lab/pg_client.py in the client namespace, its lines collected as they come."""

    def __init__(self, vlab: VigilLab, address: str, start: int = 1) -> None:
        self.vlab = vlab
        self.address = address
        self.start = start
        self.lines: list[Line] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> CommitClient:
        argv = [sys.executable, "-m", "lab.pg_client", self.address, "--start", str(self.start)]
        self.proc = self.vlab.lab.popen_in(
            "client", argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        server = ""
        for raw in self.proc.stdout:
            parts = raw.split(maxsplit=3)
            if len(parts) < 2:
                continue
            number = int(parts[2]) if parts[1] in ("ok", "err") and len(parts) > 2 else None
            rest = parts[3] if number is not None and len(parts) > 3 else " ".join(parts[2:])
            if parts[1] == "conn":
                server = rest.strip()
            self.lines.append(Line(float(parts[0]), parts[1], number, rest.strip(), server))

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def acked(self) -> set[int]:
        return {line.n for line in list(self.lines) if line.what == "ok" and line.n is not None}

    def last_ok(self) -> int | None:
        oks = [line.n for line in list(self.lines) if line.what == "ok" and line.n is not None]
        return max(oks) if oks else None

    def first_ok_after(self, moment: float) -> Line | None:
        """The first commit acknowledged after `moment` by another PostgreSQL than the one
        that acknowledged the last commit before it (answers in flight at `moment` from
        the server that lost its power do not count)."""
        lines = list(self.lines)
        before = [x.server for x in lines if x.what == "ok" and x.time <= moment]
        old = before[-1] if before else None
        return next(
            (x for x in lines if x.what == "ok" and x.time > moment and x.server != old), None
        )

    def wait_commits(self, more: int, within: float = 30.0) -> None:
        """Until `more` further commits were acknowledged."""
        target = len(self.acked()) + more
        deadline = time.monotonic() + within
        while len(self.acked()) < target:
            if time.monotonic() > deadline:
                tail = [f"{x.what} {x.n} {x.detail}" for x in self.lines[-5:]]
                raise LabError(f"{more} more commits not acknowledged in {within:.0f} s: {tail}")
            time.sleep(0.05)


_ROWS = """
import sys, psycopg
with psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="postgres",
                     dbname="postgres", connect_timeout=5) as c:
    print(" ".join(str(r[0]) for r in c.execute("SELECT n FROM commits ORDER BY n")))
"""


def committed_rows(vlab: VigilLab, address: str) -> set[int]:
    """Every row number in the table, read through the VIP from the client namespace."""
    proc = vlab.lab.exec_in("client", [sys.executable, "-c", _ROWS, address, str(PORT)], timeout=30)
    if proc.returncode != 0:
        raise LabError(f"reading the commits table through {address}: {proc.stderr.strip()}")
    return {int(x) for x in proc.stdout.split()}
