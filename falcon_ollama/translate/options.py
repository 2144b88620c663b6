"""Ollama ``options`` -> OpenAI sampling parameters. Pure; the caller logs what was dropped.

What maps: ``num_predict`` -> ``max_tokens`` (``max_completion_tokens`` for reasoning models; -1, -2 and
0 mean no limit), ``temperature``, ``top_p``, ``seed`` (negative = random = omitted), ``stop`` (string or
list; the OpenAI API takes at most 4), ``frequency_penalty``, ``presence_penalty`` (each brought inside
OpenAI's range: Ollama takes any number, OpenAI refuses one outside with a 400). Ollama's runner options
(``num_ctx``, ``top_k``, ``mirostat``…) have no OpenAI equivalent: they are never sent and are reported
back so the resource can warn once per option name. Reasoning models (o-series, gpt-5) reject sampling
parameters and ``stop``, so for them those are dropped and reported too. Unknown keys are ignored, as
Ollama does; a known key with a wrong type is a 400 with Ollama's wording
(``option "top_k" must be of type integer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falcon_ollama.errors import InvalidRequest

OPENAI_MAX_STOP_SEQUENCES = 4

_INT_OPTIONS = frozenset(
    {
        "num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch", "num_gpu",
        "main_gpu", "num_thread", "draft_num_predict", "mirostat", "num_gqa",
    }
)  # fmt: skip
_FLOAT_OPTIONS = frozenset(
    {
        "top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty",
        "frequency_penalty", "tfs_z", "mirostat_tau", "mirostat_eta",
    }
)  # fmt: skip
_BOOL_OPTIONS = frozenset(
    {
        "numa", "use_mmap", "use_mlock", "low_vram", "f16_kv", "logits_all", "vocab_only", "embedding_only",
        "penalize_newline",
    }
)  # fmt: skip
# Ollama options with no OpenAI equivalent: never sent upstream, warned about once per name.
UNMAPPABLE = (_INT_OPTIONS | _FLOAT_OPTIONS | _BOOL_OPTIONS) - {
    "seed", "num_predict", "top_p", "temperature", "presence_penalty", "frequency_penalty",
}  # fmt: skip
# Sampling parameters reasoning models (o-series, gpt-5) reject.
_SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
# The ranges OpenAI takes (a value outside is a 400); Ollama takes any number, so one is brought inside.
OPENAI_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(slots=True)
class MappedOptions:
    """The OpenAI parameters to add to the request body, and the option names that were dropped."""

    params: dict[str, Any] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def map_options(options: object, *, reasoning: bool) -> MappedOptions:
    """Translate an Ollama ``options`` object for a model (``reasoning``: o-series / gpt-5 style)."""
    result = MappedOptions()
    if options is None:
        return result
    if not isinstance(options, dict):
        raise InvalidRequest("invalid value for 'options': expected an object")
    params = result.params
    for key, value in options.items():
        if value is None:
            continue
        if key == "stop":
            stops = _stop_list(value)
            if stops and reasoning:
                result.dropped.append("stop (not supported by reasoning models)")
            elif stops:
                if len(stops) > OPENAI_MAX_STOP_SEQUENCES:
                    result.dropped.append("stop (beyond the first 4 sequences)")
                    stops = stops[:OPENAI_MAX_STOP_SEQUENCES]
                params["stop"] = stops
            continue
        if key in _INT_OPTIONS:
            number = _int_option(key, value)
            if key == "num_predict":
                if number > 0:
                    params["max_completion_tokens" if reasoning else "max_tokens"] = number
            elif key == "seed":
                if number >= 0:
                    params["seed"] = number
            else:
                result.dropped.append(key)
        elif key in _FLOAT_OPTIONS:
            number_f = _float_option(key, value)
            if key in UNMAPPABLE:
                result.dropped.append(key)
            elif reasoning and key in _SAMPLING:
                result.dropped.append(f"{key} (not supported by reasoning models)")
            else:
                low, high = OPENAI_RANGES[key]
                params[key] = inside = min(max(number_f, low), high)
                if inside != number_f:
                    result.dropped.append(
                        f"{key} (outside OpenAI's range {low:g} to {high:g}: the nearest bound is sent)"
                    )
        elif key in _BOOL_OPTIONS:
            if not isinstance(value, bool):
                raise InvalidRequest(f'option "{key}" must be of type boolean')
            result.dropped.append(key)
        # any other key: unknown to Ollama too; ignored silently, as Ollama does
    return result


def _int_option(key: str, value: Any) -> int:
    # Ollama accepts JSON floats for integer options (truncated), as Go's float64 -> int conversion does.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f'option "{key}" must be of type integer')
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise InvalidRequest(f'option "{key}" must be of type integer')
    if not -(2**63) <= value < 2**63:  # Go's int: a bigger number does not decode
        raise InvalidRequest(f'option "{key}" must be of type integer')
    return int(value)


def _float_option(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f'option "{key}" must be of type float32')
    return float(value)


def _stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        raise InvalidRequest('option "stop" must be of type array')
    if not all(isinstance(item, str) for item in value):
        raise InvalidRequest('option "stop" must be of an array of strings')
    return [item for item in value if item]


def sampling_values(
    body: dict[str, Any], *, reasoning: bool, dropped: list[str], invalid: str, note: str
) -> dict[str, float]:
    """``temperature`` and ``top_p`` of an OpenAI-shaped client body (Anthropic Messages, Responses): the
    ones to send, checked as numbers. A reasoning model refuses them, so for it they are reported in
    ``dropped`` instead. ``invalid`` and ``note`` are the dialect's wording, formatted with the key."""
    values: dict[str, float] = {}
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(invalid.format(key))
        if reasoning:
            dropped.append(note.format(key))
        else:
            values[key] = value
    return values
