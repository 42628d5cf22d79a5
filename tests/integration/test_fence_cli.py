"""`ha fence` against a real etcd (no agents: nothing performs the requests here, the
stonith lab tests do): what it writes, what it refuses, and that it says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.etcd_server import EtcdServer
from tests.integration.cli_helpers import Cli, new_cluster_name
from tests.integration.test_cli import apply_pg


@pytest.fixture
def pg(etcd_server: EtcdServer, tmp_path: Path) -> Cli:
    cli = Cli(etcd_server.endpoint, "pg-cluster-" + new_cluster_name())
    apply_pg(cli, tmp_path)
    return cli


def fencing(cli: Cli) -> dict[str, dict[str, object]]:
    records = json.loads(cli("status", "-o", "json").out)["fencing"]
    return {str(r["node"]): r for r in records}


def test_a_fence_request_is_recorded_for_the_leader_to_perform(pg: Cli) -> None:
    result = pg("fence", "host-m", "--no-wait")
    assert result.code == 0, result.err
    assert result.out == "node/host-m: fence requested\n"
    record = fencing(pg)["host-m"]
    assert record["state"] == "requested" and str(record["requestedBy"]).startswith("ha fence (")
    again = pg("fence", "host-m", "--no-wait")  # already under way: not asked twice
    assert again.code == 0 and "under way already" in again.out
    events = pg("events", "node", "host-m").out
    assert "FenceRequested" in events


def test_a_confirmation_needs_yes_off_a_terminal_and_warns(pg: Cli) -> None:
    refused = pg("fence", "--confirm", "host-s", "--no-wait")
    assert refused.code == 1 and "add --yes" in refused.err
    assert "WARNING: confirm only a node you have powered off yourself" in refused.err
    assert "host-s" not in fencing(pg)
    done = pg("fence", "--confirm", "host-s", "--yes", "--no-wait")
    assert done.code == 0 and done.out == "node/host-s: confirmation requested\n"
    assert fencing(pg)["host-s"]["state"] == "confirm"
    asked = pg("events", "node", "host-s", "--reason", "FenceConfirmRequested", "-o", "json")
    (event,) = json.loads(asked.out)
    assert event["source"]["component"] == "ha" and "ha fence --confirm" in event["message"]


def test_unknown_nodes_and_nodes_without_a_device_are_refused(pg: Cli, tmp_path: Path) -> None:
    unknown = pg("fence", "nosuch", "--no-wait")
    assert unknown.code == 5 and "not a member of the cluster" in unknown.err
    assert pg("delete", "fencedevice", "bmc-host-s").code != 0  # fencing on needs it
    witness = pg("fence", "witness", "--no-wait")
    assert witness.code == 1 and "no FenceDevice can power witness off" in witness.err
    assert "ha fence --confirm witness" in witness.err
