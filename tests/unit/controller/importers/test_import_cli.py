"""`ha import`: output, summary, --strict, keys in a root-only file, nothing written on error."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from controller.api.manifest import load
from controller.cli.main import main
from tests.unit.controller.importers.dryrun import dry_run, fences

PG = Path(__file__).parent / "fixtures" / "pg"
ADDRESSES = ["--address", "pg1=192.168.1.11,10.0.0.1", "--address", "pg2=192.168.1.12,10.0.0.2"]


def test_stdout_yaml_and_summary_without_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", "heartbeat", str(PG), str(PG / "drbd.conf"), *ADDRESSES])
    out, err = capsys.readouterr()
    assert code == 0
    assert "s3cret-pg-cluster-key" not in out + err
    assert "ha import heartbeat: " in err and " approximated, " in err and " dropped" in err
    assert "not printed: the key that would go to authkeys.key" in err
    assert "no FenceDevice targets node 'pg1'" in err  # what ha apply still needs
    dry_run(out + fences("pg1", "pg2"))


def test_strict_exits_1_when_anything_was_approximated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "heartbeat", str(PG), "--strict", *ADDRESSES]) == 1
    assert "--strict" in capsys.readouterr().err


def test_strict_exits_0_when_everything_translates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "drbd.conf"
    conf.write_text(
        "resource r0 {\n  protocol C;\n  disk { on-io-error detach; }\n"
        "  on alice { device /dev/drbd0; disk /dev/sdb1; address 10.1.1.31:7788; "
        "meta-disk internal; }\n"
        "  on bob { device /dev/drbd0; disk /dev/sdb1; address 10.1.1.32:7788; "
        "meta-disk internal; }\n}\n"
    )
    assert main(["import", "drbd", str(conf), "--strict"]) == 0
    assert "0 approximated, 0 dropped" in capsys.readouterr().err


def test_output_dir_files_apply_and_the_key_is_root_only(tmp_path: Path) -> None:
    target = tmp_path / "out"
    assert (
        main(
            [
                "import",
                "heartbeat",
                str(PG),
                str(PG / "drbd.conf"),
                "-o",
                str(target),
                "--cluster-name",
                "pg",
                *ADDRESSES,
            ]
        )
        == 0
    )
    key = target / "authkeys.key"
    assert key.read_bytes() == b"s3cret-pg-cluster-key\n"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "pgdata.shared-secret").stat().st_mode) == 0o600
    documents = load([str(target)])
    assert sorted(d.data["kind"] for d in documents) == [
        "Cluster",
        "ReplicatedVolume",
        "ResourceGroup",
    ]
    text = "---\n".join(p.read_text() for p in sorted(target.glob("*.yaml")))
    assert "s3cret" not in text
    dry_run(text + fences("pg1", "pg2"), cluster="pg")


def test_a_malformed_file_exits_1_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "ha.cf").write_text("node a b\n")
    (source / "haresources").write_text("a 10.0.0.5/24\nz 10.0.0.6/24\n")
    target = tmp_path / "out"
    code = main(
        [
            "import",
            "heartbeat",
            str(source),
            "-o",
            str(target),
            "--address",
            "a=10.0.0.1",
            "--address",
            "b=10.0.0.2",
        ]
    )
    assert code == 1
    assert not target.exists()
    assert f"{source}/haresources:2: 'z' is not a node of ha.cf" in capsys.readouterr().err


def test_drbd_import_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "drbd", str(PG / "drbd.conf")]) == 0
    out, err = capsys.readouterr()
    assert "kind: ReplicatedVolume" in out and "drbd-link-secret" not in out
    assert "pgdata.shared-secret" in err


def test_output_dir_must_be_new_or_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "00-cluster-old.yaml").write_text("# an earlier import\n")
    assert main(["import", "drbd", str(PG / "drbd.conf"), "-o", str(target)]) == 1
    assert "not an empty directory" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["00-cluster-old.yaml"]
