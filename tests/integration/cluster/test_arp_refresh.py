"""While a floating IP runs on a node, the node re-announces it every `arp.refresh`.

A switch or a peer that missed the takeover's burst (a port that came up late, an ARP
cache that outlived the move) learns where the address is within one refresh. The client
namespace captures every ARP frame on its link with a raw socket, as a switch would see it.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time

import pytest

from lab.cluster import VigilLab
from tests.integration.cluster.conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]

# Prints "<monotonic time> <sender mac> <sender ip> <target ip>" for each gratuitous ARP
# (sender IP == target IP) about the given address, for the given number of seconds.
_CAPTURE = r"""
import socket, struct, sys, time
address, seconds = socket.inet_aton(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0))
s.settimeout(0.1)
print("ready", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        frame = s.recv(2048)
    except socket.timeout:
        continue
    sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
    if spa == address and tpa == address:
        print(f"{time.monotonic():.4f} {sha.hex(':')}", flush=True)
"""


def capture(vlab: VigilLab, seconds: float) -> list[tuple[float, str]]:
    proc = vlab.lab.popen_in(
        "client",
        [sys.executable, "-S", "-c", _CAPTURE, vlab.vip(), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    out, _ = proc.communicate(timeout=seconds + 10)
    frames = []
    for line in out.splitlines():
        stamp, mac = line.split()
        frames.append((float(stamp), mac))
    return frames


def test_a_running_vip_is_announced_again_every_refresh(vlab: VigilLab) -> None:
    refresh = 0.5
    arp = f"{{count: 1, interval: 50ms, refresh: {int(refresh * 1000)}ms}}"
    assert vlab.apply(vlab.web_group(arp=arp)).code == 0
    holder = vlab.wait_running("web")
    time.sleep(0.5)  # past the takeover's own announcement
    frames = capture(vlab, 4.0)
    macs = {mac for _, mac in frames}
    assert macs == {vlab.lab.node_mac(holder).lower()}, (holder, frames)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(frames)]
    print(f"{len(frames)} announcements from {holder}, gaps {[round(g, 3) for g in gaps]}")
    assert len(frames) >= 6, frames  # about 8 in 4 s
    assert abs(statistics.median(gaps) - refresh) < 0.1, gaps
    assert max(gaps) < 2 * refresh, gaps

    # Turned off, nothing is announced once the takeover's burst is over.
    assert vlab.apply(vlab.web_group(arp="{count: 1, interval: 50ms, refresh: 0s}")).code == 0
    time.sleep(1.5)  # the changed address spec restarts the VIP: its one announcement passes
    assert vlab.wait_running("web")
    assert capture(vlab, 2.0) == []
