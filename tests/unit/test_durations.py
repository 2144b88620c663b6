"""keep_alive decoding: numbers are seconds, strings are Go durations, negatives mean forever."""

from __future__ import annotations

import math

import pytest

from falcon_ollama.durations import DurationError, format_go_duration, parse_go_duration, parse_keep_alive


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (0, 0.0),
        (1.5, 1.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("1.5h", 5400.0),
        ("10s", 10.0),
        ("0", 0.0),
        ("2h45m30.5s", 9930.5),
        ("1us", 1e-6),
        ("+5s", 5.0),
    ],
)
def test_keep_alive_values(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, -0.5, "-1m", "-1s"])
def test_negative_means_forever(value: object) -> None:
    assert parse_keep_alive(value) == math.inf


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "Unsupported type: 'bool'"),
        ([1], "Unsupported type: '[]interface {}'"),
        ({"a": 1}, "Unsupported type: 'map[string]interface {}'"),
        ("abc", 'time: invalid duration "abc"'),
        ("5", 'time: missing unit in duration "5"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),  # Go names the unit it does not know
        ("", 'time: invalid duration ""'),
        # time.ParseDuration's steps: a number ([0-9]*(.[0-9]*)?), then a unit (up to the next digit or dot)
        ("5M", 'time: unknown unit "M" in duration "5M"'),
        ("5 min", 'time: unknown unit " min" in duration "5 min"'),
        ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
        ("5m3", 'time: missing unit in duration "5m3"'),
        ("1..5s", 'time: missing unit in duration "1..5s"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ('5"x', 'time: unknown unit "\\"x" in duration "5\\"x"'),  # Go's quoting escapes the quote
        (
            "0h" * 501,
            'time: invalid duration "' + ("0h" * 501)[:1000] + '..."',
        ),  # MAX_DURATION_CHARS, bounded quote
        ("2562048h", 'time: invalid duration "2562048h"'),  # Go's overflow bound (2**63 ns)
        ("9" * 30 + "s", 'time: invalid duration "' + "9" * 30 + 's"'),
        ("é5m", 'time: invalid duration "\\xc3\\xa95m"'),  # and writes each non-ASCII byte as \\xhh
    ],
)
def test_invalid_keep_alive_uses_ollamas_wording(value: object, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_keep_alive(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m0s"), (0, "0s"), (5400, "1h30m0s"), (1.5, "1.5s"), (math.inf, "-1"), (3661, "1h1m1s")],
)
def test_go_duration_format(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


def test_parse_go_duration_roundtrip() -> None:
    assert parse_go_duration(format_go_duration(5400)) == 5400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0.5ns", 0.0),  # Go counts whole nanoseconds: this is 0 (and keep_alive 0 unloads)
        ("1.5ns", 1e-9),
        ("2562047h", 2562047 * 3600.0),
        ("2562047h47m16.854775807s", 9223372036.854775807),  # the largest Go duration
        ("-2562047h47m16.854775808s", -9223372036.854775808),  # and the smallest
        ("1.0000000000000000000001s", 1.0),  # fraction digits past what fits are ignored, as Go does
        ("0h" * 500, 0.0),
    ],
)
def test_go_duration_edges(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds, rel=1e-15, abs=1e-18)
