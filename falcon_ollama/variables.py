"""An environment variable as falcon-ollama declares it: name, parser with its bounds, default, one doc line.

``falcon_ollama.settings.VARIABLES`` declares every variable once with :class:`Variable`; the settings reader,
gunicorn.conf.py and the docs tests all iterate that table, so a variable cannot be read in one place and
documented or validated in another. The parsers' messages are quoted by docs/troubleshooting.md: keep them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and is meant to be shown as is."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: where its value goes, how it is parsed and checked, and why it exists.

    ``attribute`` is the ``Settings`` field it sets (derived from the name unless given); two variables
    may share one when their values add up (``FALCON_OLLAMA_API_KEYS`` and ``FALCON_OLLAMA_API_KEYS_FILE``).
    An unset or blank variable gives ``default``; the parser raises ``ValueError`` with a message that follows
    ``NAME: `` on the one line.
    """

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    attribute: str = ""  # default: the name in lower case without FALCON_OLLAMA_
    group: str = ""  # the Settings view it belongs to (upstream, limits, access, server, models, logging)

    def __post_init__(self) -> None:
        if not self.attribute:
            object.__setattr__(self, "attribute", self.name.lower().removeprefix("falcon_ollama_"))

    @property
    def minimum(self) -> float | None:
        """The smallest accepted number (exclusive for ``Real(exclusive=True)``) of a numeric parser."""
        return getattr(self.parse, "lowest", getattr(self.parse, "minimum", None))

    @property
    def maximum(self) -> float | None:
        return getattr(self.parse, "maximum", None)

    def read(self, env: Mapping[str, str]) -> tuple[Any, bool]:
        """The value from ``env`` (or the default) and whether the variable was set to something."""
        raw = env.get(self.name)
        if raw is None or raw.strip() == "":
            return self.default, False
        try:
            return self.parse(raw.strip()), True
        except SettingsError:
            raise  # already names its variable (OLLAMA_HOST)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{self.name}: {exc}") from None


def group(name: str, *variables: Variable) -> tuple[Variable, ...]:
    """The variables of one Settings view, tagged with its name."""
    return tuple(dataclasses.replace(v, group=name) for v in variables)


@dataclass(frozen=True, slots=True)
class Integer:
    """A whole number in ``[minimum, maximum]``; ``expected`` words the refusal of a non-number or a value
    below ``minimum``, ``floor`` (with its reason) raises the minimum with a message of its own."""

    minimum: int = 1
    expected: str = "a positive integer"
    floor: int | None = None
    floor_reason: str = ""
    maximum: int | None = None
    maximum_reason: str = ""

    @property
    def lowest(self) -> int:
        return self.minimum if self.floor is None else max(self.minimum, self.floor)

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected {self.expected}, got {text!r}") from None
        if value < self.minimum:
            raise ValueError(f"expected {self.expected}, got {text!r}")
        if self.floor is not None and value < self.floor:
            raise ValueError(f"at least {self.floor} ({self.floor_reason}), got {text!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"at most {self.maximum} ({self.maximum_reason}), got {text!r}")
        return value


@dataclass(frozen=True, slots=True)
class Real:
    """A finite number above 0 (``exclusive``) or from 0 up."""

    exclusive: bool = True
    minimum: float = 0.0

    def __call__(self, text: str) -> float:
        value = float(text)
        if self.exclusive and (not value > 0 or value != value or value == float("inf")):
            raise ValueError(f"expected a positive number of seconds, got {text!r}")
        if not self.exclusive and (not value >= 0 or value == float("inf")):
            raise ValueError(f"expected a number >= 0, got {text!r}")
        return value


POSITIVE_INT = Integer()
NON_NEGATIVE_INT = Integer(minimum=0, expected="an integer >= 0")
SECONDS = Real()
NON_NEGATIVE = Real(exclusive=False)


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words, case-insensitive, returned in lower case."""

    options: tuple[str, ...]
    expected: str

    def __call__(self, text: str) -> str:
        lowered = text.lower()
        if lowered not in self.options:
            raise ValueError(f"expected {self.expected}, got {text!r}")
        return lowered


def text(value: str) -> str:
    return value


def boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def redis_url(text: str) -> str:
    """A redis://, rediss:// or unix:// URL; the refusal never repeats the value (it may hold a password)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise ValueError("not a valid URL (value not shown: it may hold a password)") from None
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ValueError(
            "expected redis://[:password@]host[:port][/db], rediss://... or unix:///path "
            "(value not shown: it may hold a password)"
        )
    return text


def version(text: str) -> str:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected a version like 0.32.15, got {text!r}")
    return text


def writable_file(text: str) -> str:
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise ValueError(f"cannot write a log file in {directory!r}")
    return text


def writable_directory(text: str) -> str:
    """A directory we may create and empty: an existing writable one, or a new one in a writable parent."""
    path = os.path.abspath(text)
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write in the directory {text!r}")
        return text
    if os.path.exists(path):
        raise ValueError(f"{text!r} exists and is not a directory")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create the directory {text!r}")
    return text


def keep_alive_seconds(text: str) -> float:
    from falcon_ollama.durations import parse_keep_alive

    try:
        number: str | float = float(text)
    except ValueError:
        number = text
    return parse_keep_alive(number)
