"""Ollama's ``keep_alive`` values: a JSON number of seconds or a Go duration string.

Ollama decodes ``keep_alive`` into ``api.Duration``: a number means seconds, a string is parsed by Go's
``time.ParseDuration`` (``"5m"``, ``"1h30m"``, ``"300ms"``, ``"-1m"``), and a negative value means "keep
forever". We mirror that, including Go's error texts, so a client sees the same 400 it would from Ollama.
"""

from __future__ import annotations

import math
import re

FOREVER = math.inf

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NUMBER = re.compile(r"[0-9]*(?:\.[0-9]*)?")
_DIGITS_AND_DOT = frozenset("0123456789.")


class DurationError(ValueError):
    """The value is not a duration; the message is Ollama's (Go's) wording."""


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string into seconds (``"1h30m"`` -> 5400.0), step by step as Go's
    ``time.ParseDuration`` does, so each failure gets Go's own words (``time: unknown unit "M" in duration
    "5M"``, ``time: missing unit in duration "5"``, ``time: invalid duration "x"``)."""
    original = text
    invalid = f"time: invalid duration {_quote(original)}"
    sign = 1.0
    if text and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise DurationError(invalid)
    total = 0.0
    pos, end = 0, len(text)
    while pos < end:
        number = _NUMBER.match(text, pos)  # [0-9]*(\.[0-9]*)?, as Go consumes it
        assert number is not None  # the pattern matches the empty string
        if text[pos] not in _DIGITS_AND_DOT or number.group(0) in ("", "."):
            raise DurationError(invalid)
        pos = number.end()
        unit_end = pos
        while unit_end < end and text[unit_end] not in _DIGITS_AND_DOT:
            unit_end += 1
        unit = text[pos:unit_end]
        if not unit:
            raise DurationError(f"time: missing unit in duration {_quote(original)}")
        if unit not in _UNITS:
            raise DurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(original)}")
        total += float(number.group(0)) * _UNITS[unit]
        pos = unit_end
    return sign * total


def _quote(text: str) -> str:
    """Go's time package quoting: double quotes, a quote or backslash escaped, and each byte of a character
    outside printable ASCII written as ``\\xhh``."""
    out = ['"']
    for char in text:
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append('"')
    return "".join(out)


def parse_keep_alive(value: object) -> float:
    """Decode a ``keep_alive`` JSON value into seconds; ``math.inf`` for "forever" (any negative value).

    Raises DurationError with Ollama's message for anything else (e.g. ``Unsupported type: 'bool'``).
    """
    if isinstance(value, bool) or value is None:
        raise DurationError(f"Unsupported type: '{_go_type_name(value)}'")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds):
            raise DurationError("Unsupported type: 'float64'")
    elif isinstance(value, str):
        seconds = parse_go_duration(value)
    else:
        raise DurationError(f"Unsupported type: '{_go_type_name(value)}'")
    return FOREVER if seconds < 0 else seconds


def format_go_duration(seconds: float) -> str:
    """Format seconds like Go's ``Duration.String`` (``300`` -> ``"5m0s"``)."""
    if math.isinf(seconds):
        return "-1"
    total_ns = round(seconds * 1e9)
    if total_ns == 0:
        return "0s"
    hours, rem = divmod(total_ns, 3600 * 10**9)
    minutes, rem = divmod(rem, 60 * 10**9)
    secs = rem / 1e9
    secs_text = f"{secs:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs_text}s"
    if minutes:
        return f"{minutes}m{secs_text}s"
    return f"{secs_text}s"


def _go_type_name(value: object) -> str:
    """The Go type name Ollama reports for a JSON value it cannot use as a duration."""
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__
