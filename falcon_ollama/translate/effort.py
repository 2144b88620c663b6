"""Reasoning effort per model family: what a client's ``think`` (or effort) becomes for the upstream.

OpenAI's families accept different values (its API reference, read 2026-12): gpt-5, -mini and -nano take
``minimal|low|medium|high`` and reason by default; gpt-5.1 takes ``none|low|medium|high`` and does not
reason unless asked; gpt-5.2 and later add ``xhigh``; gpt-5-pro takes ``high`` only; the codex models and
the o-series take ``low|medium|high`` and cannot switch reasoning off; o1-mini and o1-preview take no effort
at all. Sending a value a family does not accept is a 400, so every value goes through :func:`effort_for`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True, slots=True)
class EffortScale:
    """The efforts a family accepts (lowest first), its off switch, and whether it reasons by default."""

    levels: tuple[str, ...]
    off: str | None
    reasons_by_default: bool


_LOW_HIGH = EffortScale(("low", "medium", "high"), None, True)

# Most specific first; matched against the upstream id's last path segment, lower-cased.
SCALES: tuple[tuple[str, EffortScale], ...] = (
    ("o1-mini*", EffortScale((), None, True)),
    ("o1-preview*", EffortScale((), None, True)),
    ("gpt-5-pro*", EffortScale(("high",), None, True)),
    ("gpt-5*-chat*", EffortScale((), None, False)),
    ("gpt-5.1-codex-max*", EffortScale(("low", "medium", "high", "xhigh"), None, True)),
    ("gpt-5*codex*", _LOW_HIGH),
    ("gpt-5.1*", EffortScale(("none", "low", "medium", "high"), "none", False)),
    ("gpt-5.[2-9]*", EffortScale(("none", "low", "medium", "high", "xhigh"), "none", False)),
    ("gpt-5*", EffortScale(("minimal", "low", "medium", "high"), "minimal", True)),
    ("o[1-9]*", _LOW_HIGH),
    ("gpt-oss*", _LOW_HIGH),
)

# A model the catalog calls a reasoning model without naming its family: the values every family takes.
DEFAULT_SCALE = _LOW_HIGH


def scale_for(upstream_id: str) -> EffortScale:
    base = upstream_id.lower().rsplit("/", 1)[-1]
    for pattern, scale in SCALES:
        if fnmatch.fnmatchcase(base, pattern):
            return scale
    return DEFAULT_SCALE


def effort_for(upstream_id: str, think: bool | str | None) -> str | None:
    """The ``reasoning_effort`` to send for ``think`` (Ollama's bool or level), or None to send none.

    ``true`` turns reasoning on where it is off by default (``medium``); ``false`` sends the family's off
    switch where it has one; a level is clamped to the nearest the family accepts; ``max`` (and ``xhigh``)
    is the highest it accepts."""
    if think is None:
        return None
    scale = scale_for(upstream_id)
    if not scale.levels:
        return None
    if think is False:
        return scale.off
    if think is True:
        return None if scale.reasons_by_default else _nearest(scale, "medium")
    if think == "max":
        return scale.levels[-1]
    return _nearest(scale, str(think))


def _nearest(scale: EffortScale, wanted: str) -> str:
    """``wanted`` if the scale has it, else the closest level above (or the highest), never the off value."""
    if wanted in scale.levels:
        return wanted
    rank = LEVELS.index(wanted) if wanted in LEVELS else LEVELS.index("medium")
    on = [level for level in scale.levels if level != scale.off] or list(scale.levels)
    above = [level for level in on if LEVELS.index(level) >= rank]
    return above[0] if above else on[-1]


# Efforts clients send on /v1 that no OpenAI family takes: Ollama accepts them as its top tier.
_TOP_ALIASES = ("max", "ultra")


def effort_for_request(upstream_id: str, wanted: str) -> str | None:
    """A client's ``reasoning_effort`` (the words Ollama's /v1 accepts) as the family takes it, None to drop.

    A value the family accepts is kept. ``none`` becomes the family's off switch (``minimal`` on gpt-5) or is
    dropped where reasoning cannot be switched off (o-series), as ``think: false`` is on /api/chat.
    ``minimal`` becomes ``none`` on families that replaced it with ``none`` (gpt-5.1 and later), else the
    lowest level; ``xhigh``/``max``/``ultra`` the highest level; others the nearest level above. A string
    that is no effort at all is returned as is, for the upstream to refuse in its own words."""
    scale = scale_for(upstream_id)
    if not scale.levels or wanted == "":
        return None
    if wanted in scale.levels:
        return wanted
    if wanted == "none":
        return effort_for(upstream_id, False)
    if wanted == "minimal" and scale.off == "none":
        return "none"
    if wanted in _TOP_ALIASES:
        return effort_for(upstream_id, "max")
    if wanted not in LEVELS:
        return wanted
    return _nearest(scale, wanted)


def samples_freely(upstream_id: str, effort: str | None) -> bool:
    """Whether a reasoning family takes ``temperature``/``top_p``/``logprobs`` at this effort (None: default).

    OpenAI's reasoning guide: gpt-5.1 and later take them only while reasoning is off (``none``, their
    default); gpt-5, -mini, -nano, the codex models and the o-series never do."""
    scale = scale_for(upstream_id)
    if scale.off != "none":
        return False
    return effort == "none" or (effort is None and not scale.reasons_by_default)
