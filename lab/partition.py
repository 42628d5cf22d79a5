"""Network partitions as nftables `bridge` rules in the lab's switch namespace.

Filtering on the bridge ports (iif/oif) rather than on IPs means a cut also
holds for addresses added later (VIPs) and for ARP, exactly like pulling a
cable between two switch segments.
"""

from __future__ import annotations

from itertools import combinations

from lab.errors import LabError
from lab.shell import require_nft, run

TABLE = "vigil_lab"
# What a one-way block drops: every IP packet, or only Vigil's heartbeats (UDP 694, the
# Cluster spec's default port) while etcd and client traffic still pass. ARP passes both
# ways: with ARP blocked one way, neither side could resolve the other once its cache
# entry aged, and the fault would turn into a two-way cut.
BLOCKABLE = {"all": "ether type { ip, ip6 } ", "heartbeat": "udp dport 694 "}


def parse_groups(spec: str) -> list[list[str]]:
    """'n1,n2 / n3' -> [['n1', 'n2'], ['n3']]."""
    groups = [[n.strip() for n in part.split(",") if n.strip()] for part in spec.split("/")]
    if len(groups) < 2 or any(not g for g in groups):
        raise LabError(
            f"partition spec {spec!r} is invalid: give at least two non-empty groups "
            "separated by '/', e.g. 'n1 / n2,n3'"
        )
    return groups


def cut_pairs(groups: list[list[str]], known: list[str]) -> list[list[str]]:
    """Node pairs that must not talk: every pair taken from two different groups."""
    seen: dict[str, int] = {}
    for gi, group in enumerate(groups):
        for n in group:
            if n not in known:
                raise LabError(f"partition names unknown node {n!r}; nodes are {', '.join(known)}")
            if n in seen:
                raise LabError(f"node {n!r} is in partition groups {seen[n] + 1} and {gi + 1}")
            seen[n] = gi
    pairs: list[list[str]] = []
    for g1, g2 in combinations(groups, 2):
        pairs.extend(sorted([a, b]) for a in g1 for b in g2)
    return pairs


def merge_cuts(existing: list[list[str]], new: list[list[str]]) -> list[list[str]]:
    unique = {(p[0], p[1]) for p in existing} | {(p[0], p[1]) for p in new}
    return [list(p) for p in sorted(unique)]


def check_block(src: str, dst: str, what: str, known: list[str]) -> list[str]:
    for node in (src, dst):
        if node not in known:
            raise LabError(f"block names unknown node {node!r}; nodes are {', '.join(known)}")
    if src == dst:
        raise LabError(f"block from {src} to itself: name two different nodes")
    if what not in BLOCKABLE:
        raise LabError(f"block what {what!r}: use one of {', '.join(BLOCKABLE)}")
    return [src, dst, what]


def ruleset(
    cuts: list[list[str]], port_of: dict[str, str], blocks: list[list[str]] | None = None
) -> str:
    """A complete nft script that replaces the lab table with rules for `cuts` (both
    directions) and `blocks` (one direction: [source, destination, what])."""
    lines = [
        f"table bridge {TABLE} {{}}",
        f"delete table bridge {TABLE}",
        f"table bridge {TABLE} {{",
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
    ]
    for a, b in cuts:
        pa, pb = port_of[a], port_of[b]
        lines.append(f'    iifname "{pa}" oifname "{pb}" drop')
        lines.append(f'    iifname "{pb}" oifname "{pa}" drop')
    for src, dst, what in blocks or []:
        lines.append(f'    iifname "{port_of[src]}" oifname "{port_of[dst]}" {BLOCKABLE[what]}drop')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply(
    switch_ns: str,
    cuts: list[list[str]],
    port_of: dict[str, str],
    blocks: list[list[str]] | None = None,
) -> None:
    nft = require_nft()
    if cuts or blocks:
        script = ruleset(cuts, port_of, blocks)
        run(["ip", "netns", "exec", switch_ns, nft, "-f", "-"], input_text=script)
    else:
        script = f"table bridge {TABLE} {{}}\ndelete table bridge {TABLE}\n"
        run(["ip", "netns", "exec", switch_ns, nft, "-f", "-"], input_text=script)
