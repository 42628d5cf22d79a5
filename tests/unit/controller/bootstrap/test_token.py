"""Join tokens: format, parsing, secret checks."""

from __future__ import annotations

import pytest

from controller.bootstrap.token import (
    TokenError,
    check_secret,
    new_token,
    parse_token,
    secret_hash,
    token_record,
)

FPR = "ab" * 32


def test_round_trip() -> None:
    token = new_token(FPR, "10.0.0.1:2378")
    again = parse_token(str(token))
    assert again == token
    assert (again.host, again.port) == ("10.0.0.1", 2378)


def test_ipv6_endpoint() -> None:
    token = parse_token(f"abcdef.0123456789abcdef@{FPR}@[fd00::1]:2378")
    assert (token.host, token.port) == ("fd00::1", 2378)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("nonsense", "malformed join token"),
        (f"abc.0123456789abcdef@{FPR}@h:1", "6-character id"),
        (f"abcdef.short@{FPR}@h:1", "16-character secret"),
        ("abcdef.0123456789abcdef@xyz@h:1", "64 hex digits"),
        (f"abcdef.0123456789abcdef@{FPR}@nohost", "HOST:PORT"),
        (f"abcdef.0123456789abcdef@{FPR}@h:99999", "HOST:PORT"),
    ],
)
def test_malformed_tokens(text: str, match: str) -> None:
    with pytest.raises(TokenError, match=match):
        parse_token(text)


def test_record_keeps_only_a_hash() -> None:
    token = new_token(FPR, "h:1")
    record = token_record(token, 100.0, 60.0, "host-m")
    assert token.secret not in str(record)
    assert record["secretSha256"] == secret_hash(token.secret)
    check_secret(record, token.id, token.secret, 159.0)
    with pytest.raises(TokenError, match="expired"):
        check_secret(record, token.id, token.secret, 160.0)
    with pytest.raises(TokenError, match="wrong secret"):
        check_secret(record, token.id, "x" * 16, 120.0)
    with pytest.raises(TokenError, match="unknown or expired"):
        check_secret(None, token.id, token.secret, 120.0)
