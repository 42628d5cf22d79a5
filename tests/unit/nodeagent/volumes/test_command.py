"""A replica's `blockrepl serve` command carries every field of the volume's spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from blockrepl.cli import build_parser
from controller.api.decode import decode
from controller.api.volume import ReplicatedVolume
from nodeagent.volumes.command import NotAReplica, ReplicaFiles, serve_command

RUN = Path("/run/vigil")
FILES = ReplicaFiles(Path("/run/vigil/volumes/store.json"), "/pki/s.crt", "/pki/s.key", "/pki/ca")


def volume(**spec: Any) -> ReplicatedVolume:
    obj = decode(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "ReplicatedVolume",
            "metadata": {"name": "pgdata"},
            "spec": {
                "replicas": [
                    {"node": "n1", "disk": "/dev/sdb1", "address": "10.0.0.1:7789"},
                    {
                        "node": "n2",
                        "disk": "/dev/sdc",
                        "address": "10.0.0.2:7790",
                        "metaDisk": "/dev/sdd",
                    },
                ],
                **spec,
            },
        }
    )
    assert isinstance(obj, ReplicatedVolume)
    return obj


def parsed(argv: list[str]) -> Any:
    assert argv[1:4] == ["-m", "blockrepl.cli", "serve"]
    return build_parser().parse_args(argv[3:])


def test_defaults_become_flags_blockrepl_accepts() -> None:
    args = parsed(serve_command(volume(), "n1", RUN, FILES))
    assert args.backing == "/dev/sdb1" and args.meta in (None, "internal")
    assert args.listen_repl == "10.0.0.1:7789" and args.peer == "10.0.0.2:7790"
    assert args.unix == ["/run/vigil/volumes/pgdata/nbd.sock"]
    assert args.control == "/run/vigil/volumes/pgdata/control.sock"
    assert args.role == "secondary"  # the cluster promotes it, never the command line
    assert (args.protocol, args.timeout, args.ping_interval) == ("C", 2.0, 0.5)
    assert args.resync_rate == str(200 << 20) and args.csums
    assert args.on_io_error == "detach"
    # Outdate records in Vigil's store, naming the peer by its node.
    assert args.outdate_peer == "resource-only" and args.peer_id == "n2"
    assert args.store_config == "/run/vigil/volumes/store.json"
    assert args.node_name == "n1"
    # No secret file in the spec: the one each node derives from the cluster key.
    assert args.secret_file == "/run/vigil/volumes/pgdata/secret"
    assert args.tls_cert is None


def test_every_setting_reaches_the_replica() -> None:
    v = volume(
        protocol="A",
        secretFile="/etc/vigil/secrets/pgdata",
        resyncRate="10M",
        checksumResync=False,
        onIOError="pass_on",
        outdatePeer="dont-care",
        splitBrain={
            "afterSB0Pri": "discard-zero-changes",
            "afterSB1Pri": "discard-secondary",
            "afterSB2Pri": "violently-as0p",
        },
        network={"keepalive": "200ms", "timeout": "1s", "tls": True},
    )
    args = parsed(serve_command(v, "n2", RUN, FILES))
    assert args.backing == "/dev/sdc" and args.meta == "/dev/sdd"
    assert args.listen_repl == "10.0.0.2:7790" and args.peer == "10.0.0.1:7789"
    assert (args.protocol, args.timeout, args.ping_interval) == ("A", 1.0, 0.2)
    assert args.resync_rate == str(10 << 20) and not args.csums
    assert args.on_io_error == "pass_on"
    assert args.outdate_peer == "dont-care" and args.store_config is None
    assert args.peer_id == "n1"  # named in its status even without outdate records
    assert (args.after_sb_0pri, args.after_sb_1pri, args.after_sb_2pri) == (
        "discard-zero-changes",
        "discard-secondary",
        "violently-as0p",
    )
    assert args.secret_file == "/etc/vigil/secrets/pgdata"
    assert (args.tls_cert, args.tls_key, args.tls_ca) == ("/pki/s.crt", "/pki/s.key", "/pki/ca")
    assert args.tls_peer_name == "n1"


def test_a_node_without_a_replica_has_no_command() -> None:
    with pytest.raises(NotAReplica, match="no replica on n3"):
        serve_command(volume(), "n3", RUN, FILES)
