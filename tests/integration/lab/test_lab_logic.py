"""Pure logic of the lab: naming, addressing, partition rules, state files, CLI parsing."""

from __future__ import annotations

import argparse
import os
import shutil

import pytest

from lab import LabError
from lab.cli import register
from lab.names import make_layout, owns_netns, render_argv, subnet_octets, validate_lab_name
from lab.partition import check_block, cut_pairs, merge_cuts, parse_groups, ruleset
from lab.shell import check_prerequisites
from lab.state import LabState, NodeRuntime


def test_layout_is_stable_and_fits_interface_limits() -> None:
    a = make_layout("demo", ["n1", "n2", "n3"])
    assert a == make_layout("demo", ["n1", "n2", "n3"])
    x, y = subnet_octets("demo")
    assert 200 <= x < 250 and 0 <= y < 256
    assert [n.ip for n in a.nodes] == [f"10.{x}.{y}.{i}" for i in (11, 12, 13)]
    assert a.client.ip == f"10.{x}.{y}.250" and a.subnet == f"10.{x}.{y}.0/24"
    assert len({n.mac for n in a.nodes} | {a.client.mac}) == 4
    assert all(len(ep.port) <= 15 for ep in (*a.nodes, a.client))
    assert a.all_netns() == ["vl-demo-sw", "vl-demo-cl", "vl-demo-n1", "vl-demo-n2", "vl-demo-n3"]
    long = make_layout("a" * 20, ["abcdefgh"])
    assert len(long.nodes[0].port) <= 15


@pytest.mark.parametrize("bad", ["", "a-b", "Upper", "x" * 21, "a b"])
def test_bad_lab_names_are_rejected_with_the_rule(bad: str) -> None:
    with pytest.raises(LabError, match=r"\[a-z0-9\]"):
        validate_lab_name(bad)


@pytest.mark.parametrize("nodes", [["n1", "n1"], ["sw"], ["1n"], []])
def test_bad_node_names_are_rejected(nodes: list[str]) -> None:
    with pytest.raises(LabError, match="node"):
        make_layout("demo", nodes)


def test_sweep_never_confuses_labs_sharing_a_prefix() -> None:
    assert owns_netns("t1", "vl-t1-n1")
    assert not owns_netns("t1", "vl-t12-n1")
    assert not owns_netns("t1", "vl-t1-x-n1")


def test_render_argv_fills_placeholders_and_names_bad_ones() -> None:
    out = render_argv(["srv", "--id={node}", "{ip}", "{disk}/db", "{{x}}"],
                      node="n1", ip="10.0.0.1", disk="/d", lab="L")  # fmt: skip
    assert out == ["srv", "--id=n1", "10.0.0.1", "/d/db", "{x}"]
    with pytest.raises(LabError, match=r"argv\[1\].*bad placeholder"):
        render_argv(["srv", "{port}"], node="n1", ip="", disk="", lab="L")


def test_partition_groups_and_rules() -> None:
    groups = parse_groups("n1 / n2, n3")
    assert groups == [["n1"], ["n2", "n3"]]
    cuts = cut_pairs(groups, ["n1", "n2", "n3", "n4"])
    assert cuts == [["n1", "n2"], ["n1", "n3"]]
    assert merge_cuts(cuts, [["n1", "n2"], ["n3", "n4"]]) == [
        ["n1", "n2"],
        ["n1", "n3"],
        ["n3", "n4"],
    ]
    text = ruleset(cuts, {"n1": "p-n1", "n2": "p-n2", "n3": "p-n3"})
    assert 'iifname "p-n1" oifname "p-n2" drop' in text
    assert 'iifname "p-n3" oifname "p-n1" drop' in text
    assert "p-n4" not in text
    ports = {"n1": "p-n1", "n2": "p-n2", "n3": "p-n3"}
    one_way = ruleset([], ports, [["n1", "n2", "all"], ["n3", "n1", "heartbeat"]])
    assert 'iifname "p-n1" oifname "p-n2" ether type { ip, ip6 } drop' in one_way
    assert 'iifname "p-n2" oifname "p-n1"' not in one_way  # the other way passes
    assert 'iifname "p-n3" oifname "p-n1" udp dport 694 drop' in one_way
    assert check_block("n1", "n2", "heartbeat", ["n1", "n2"]) == ["n1", "n2", "heartbeat"]
    with pytest.raises(LabError, match="unknown node 'n9'"):
        check_block("n1", "n9", "all", ["n1", "n2"])
    with pytest.raises(LabError, match="use one of all, heartbeat"):
        check_block("n1", "n2", "udp", ["n1", "n2"])
    with pytest.raises(LabError, match="to itself"):
        check_block("n1", "n1", "all", ["n1", "n2"])
    for spec in ("n1", "n1 / ", "/"):
        with pytest.raises(LabError, match="two non-empty groups"):
            parse_groups(spec)
    with pytest.raises(LabError, match="unknown node 'n9'"):
        cut_pairs([["n1"], ["n9"]], ["n1", "n2"])
    with pytest.raises(LabError, match="'n1' is in partition groups 1 and 2"):
        cut_pairs([["n1"], ["n1", "n2"]], ["n1", "n2"])


def test_state_round_trip_and_bad_file() -> None:
    st = LabState(name="demo", nodes=["n1"], payload=[["x", "{node}"]], disk_root="/d",
                  python="/py", runtime={"n1": NodeRuntime(pid=5, pid_start=7, boots=1)},
                  cuts=[["n1", "n2"]], blocks=[["n2", "n1", "heartbeat"]])  # fmt: skip
    assert LabState.from_json(st.to_json(), "mem") == st
    with pytest.raises(LabError, match=r"unreadable.*down"):
        LabState.from_json('{"version": 99}', "/run/x/state.json")


def test_cli_parses_every_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="ha")
    register(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(["lab", "up", "--nodes", "5", "--name", "x1", "--payload", "srv {ip}"])
    assert (a.nodes, a.name, a.payload) == (5, "x1", ["srv {ip}"])
    a = parser.parse_args(["lab", "partition", "n1,n2", "/", "n3"])
    assert " ".join(a.groups) == "n1,n2 / n3"
    for cmd in (
        ["kill", "n1"],
        ["reboot", "n1"],
        ["heal"],
        ["block", "n1", "n2", "--only", "heartbeat"],
        ["status", "--json"],
        ["down", "--keep-disks"],
    ):
        assert callable(parser.parse_args(["lab", *cmd]).func)


def test_missing_prerequisites_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "nsenter" else real_which(t))
    with pytest.raises(LabError) as info:
        check_prerequisites()
    msg = str(info.value)
    assert "must run as root" in msg and "`nsenter` not found" in msg and "util-linux" in msg
