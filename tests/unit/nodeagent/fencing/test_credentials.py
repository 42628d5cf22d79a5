from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodeagent.fencing.credentials import (
    Credentials,
    CredentialsError,
    check_ownership,
    load,
    parse,
    redact,
)

REG = 0o100000


def test_a_bare_password() -> None:
    assert parse("s3cret\n", "/f") == Credentials(username=None, password="s3cret")


def test_username_and_password_lines_with_comments() -> None:
    creds = parse("# bmc of n1\nusername = admin\npassword=p=a ss\n\n", "/f")
    assert creds == Credentials(username="admin", password="p=a ss")


def test_a_keyed_file_without_password_is_refused() -> None:
    with pytest.raises(CredentialsError, match=r"/f has no `password=` line"):
        parse("username=admin\n", "/f")


def test_a_bad_line_is_named_without_quoting_it() -> None:
    with pytest.raises(CredentialsError) as info:
        parse("username=admin\nhunter2\npassword=x\n", "/f")
    assert "line 2" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(CredentialsError, match="holds no password"):
        parse("\n", "/f")


def test_the_password_is_not_in_the_repr() -> None:
    assert "hunter2" not in repr(Credentials(username="u", password="hunter2"))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660])
def test_group_or_other_access_is_refused_with_the_fix(mode: int) -> None:
    with pytest.raises(CredentialsError) as info:
        check_ownership("/etc/vigil/bmc", REG | mode, 0)
    assert "/etc/vigil/bmc" in str(info.value)
    assert "chmod 600 /etc/vigil/bmc" in str(info.value)


def test_a_file_not_owned_by_root_is_refused() -> None:
    with pytest.raises(CredentialsError, match="chown root:root /f"):
        check_ownership("/f", REG | 0o600, 1000)


def test_owner_only_modes_are_accepted() -> None:
    check_ownership("/f", REG | 0o600, 0)
    check_ownership("/f", REG | 0o400, 0)


def test_load_checks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bmc"
    path.write_text("password=pw\n")
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError, match=f"chmod 600 {path}"):
        load(str(path))
    os.chmod(path, 0o600)
    assert load(str(path)).password == "pw"


def test_load_refuses_a_symlink_and_a_missing_file(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("pw\n")
    os.chmod(real, 0o600)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CredentialsError, match="not a symlink"):
        load(str(tmp_path / "link"))
    with pytest.raises(CredentialsError, match="does not exist on this node"):
        load(str(tmp_path / "nope"))


def test_redact() -> None:
    assert redact("login pw failed for pw", "pw", None) == "login *** failed for ***"
