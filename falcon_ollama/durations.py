"""Ollama's ``keep_alive`` values: a JSON number of seconds or a Go duration string.

Ollama decodes ``keep_alive`` into ``api.Duration``: a number means seconds, a string is parsed by Go's
``time.ParseDuration`` (``"5m"``, ``"1h30m"``, ``"300ms"``, ``"-1m"``), and a negative value means "keep
forever". We mirror that, including Go's error texts, so a client sees the same 400 it would from Ollama.
"""

from __future__ import annotations

import math
import re

FOREVER = math.inf

# Go's unit table, in nanoseconds (time.ParseDuration counts in integer nanoseconds, as below).
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5
    "μs": 1_000,  # U+03BC
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# One part: [0-9]*, (\.[0-9]*)?, then the unit: everything up to the next digit or dot (Go's own steps).
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_DIGITS_AND_DOT = frozenset("0123456789.")
_LIMIT = 1 << 63  # Go's overflow bound for a duration's nanoseconds
_QUOTED_MAX = 1_000  # characters of the text an error quotes (Go quotes it all; ours is bounded)
# The longest duration string taken (Go has no bound; no real one comes near): longer is "invalid duration".
MAX_DURATION_CHARS = 1_000


class DurationError(ValueError):
    """The value is not a duration; the message is Ollama's (Go's) wording."""


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string into seconds (``"1h30m"`` -> 5400.0) as Go's ``time.ParseDuration`` does:
    integer nanoseconds (``"0.5ns"`` is 0), the same overflow bound, and each failure in Go's own words
    (``time: unknown unit "M" in duration "5M"``, ``time: missing unit in duration "5"``, ``time: invalid
    duration "x"``). At most ``MAX_DURATION_CHARS`` characters, so its cost is bounded whatever it holds."""
    original = text
    if len(text) > MAX_DURATION_CHARS:  # e.g. "0h" a million times: valid for Go, a second of our loop here
        raise DurationError(_invalid(original))
    negative = False
    if text[:1] in ("+", "-") and text:
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise DurationError(_invalid(original))
    total = 0
    pos, end = 0, len(text)
    while pos < end:
        if text[pos] not in _DIGITS_AND_DOT:
            raise DurationError(_invalid(original))
        part = _PART.match(text, pos)
        assert part is not None  # every group may be empty
        whole, fraction, unit = part.group(1), part.group(2), part.group(3)
        if not whole and not fraction:  # no digits (".s")
            raise DurationError(_invalid(original))
        significant = whole.lstrip("0")
        value = (
            int(significant)
            if significant and len(significant) <= 19
            else (0 if not significant else _LIMIT + 1)
        )
        if value > _LIMIT:
            raise DurationError(_invalid(original))
        if not unit:
            raise DurationError(f"time: missing unit in duration {_quote(original)}")
        scale_ns = _UNIT_NS.get(unit)
        if scale_ns is None:
            raise DurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(original)}")
        if value > _LIMIT // scale_ns:
            raise DurationError(_invalid(original))
        value *= scale_ns
        digits, scale = _leading_fraction(fraction or "")
        if digits > 0:
            value += int(float(digits) * (float(scale_ns) / scale))
            if value > _LIMIT:
                raise DurationError(_invalid(original))
        total += value
        if total > _LIMIT:
            raise DurationError(_invalid(original))
        pos = part.end()
    if not negative and total > _LIMIT - 1:
        raise DurationError(_invalid(original))
    return (-total if negative else total) / 1e9


def _leading_fraction(digits: str) -> tuple[int, float]:
    """Go's leadingFraction: the fraction's digits as an integer and its scale, precision kept only while the
    integer fits (later digits are read and ignored)."""
    value, scale = 0, 1.0
    for char in digits[:20]:  # by the 20th digit the integer no longer fits: the rest would be ignored
        if value > (_LIMIT - 1) // 10:
            break
        following = value * 10 + ord(char) - 48
        if following > _LIMIT:
            break
        value = following
        scale *= 10
    return value, scale


def _invalid(original: str) -> str:
    return f"time: invalid duration {_quote(original)}"


def _quote(text: str) -> str:
    """Go's time package quoting: double quotes, a quote or backslash escaped, and each byte of a character
    outside printable ASCII written as ``\\xhh``. Bounded: past ``_QUOTED_MAX`` characters, ``...``."""
    cut = text[:_QUOTED_MAX]
    tail = "..." if len(text) > _QUOTED_MAX else ""
    if cut.isascii() and cut.isprintable() and '"' not in cut and "\\" not in cut:
        return f'"{cut}{tail}"'
    out = ['"']
    for char in cut:
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append(tail + '"')
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
