from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("200ms", 200),
        ("1s", 1000),
        ("2m", 120_000),
        ("1m30s", 90_000),
        ("1.5s", 1500),
        ("0s", 0),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("1s500ms", 1500),
    ],
)
def test_durations_parse(text: str, ms: int) -> None:
    assert parse_duration(text) == timedelta(milliseconds=ms)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1x", "invalid duration"),
        ("", "invalid duration"),
        ("s", "invalid duration"),
        ("1.0001ms", "finer than a millisecond"),
        ("1 s", "invalid duration"),
    ],
)
def test_bad_durations_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


def test_bare_number_duration_asks_for_a_unit() -> None:
    with pytest.raises(ValueError, match=r"needs a unit: write 200s or 200ms"):
        parse_duration(200)
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(True)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (200, "200ms"),
        (1000, "1s"),
        (90_000, "1m30s"),
        (1500, "1500ms"),
        (0, "0s"),
        (86_400_000 + 1000, "1d1s"),
    ],
)
def test_durations_format_canonically(ms: int, text: str) -> None:
    assert format_duration(timedelta(milliseconds=ms)) == text


@given(st.integers(min_value=0, max_value=10**10))
def test_duration_round_trip(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("200M", 200 << 20),
        ("1G", 1 << 30),
        ("4096", 4096),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("1.5K", 1536),
        ("2T", 2 << 40),
    ],
)
def test_sizes_parse_as_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("200MB", "ambiguous size"),
        ("1g", "upper-case"),
        ("big", "invalid size"),
        ("1.3", "whole number of bytes"),
        ("-5", "invalid size"),
    ],
)
def test_bad_sizes_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_size(text)


def test_size_refuses_booleans_and_negative_numbers() -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_size(True)
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)


@given(st.integers(min_value=0, max_value=1 << 60))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size
