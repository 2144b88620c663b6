"""What the settings ask of every upstream request a translator builds. Pure: no HTTP, no settings import.

The resources build one ``RequestRules`` from the settings and hand it to each translation, so the
translators take the same two things the same way: the input limits, and whether a stream asks the upstream
for its token counts (``FALCON_OLLAMA_STREAM_USAGE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falcon_ollama.limits import Limits


@dataclass(frozen=True, slots=True)
class RequestRules:
    include_usage: bool = True  # a stream asks for the final usage chunk (stream_options.include_usage)
    limits: Limits = field(default_factory=Limits)

    def stream_options(self, stream: bool) -> dict[str, Any]:
        """The fields a chat completion request adds for this: ``stream_options`` on a stream, else none."""
        return {"stream_options": {"include_usage": True}} if stream and self.include_usage else {}


DEFAULT_RULES = RequestRules()
