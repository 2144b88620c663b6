"""What every client dialect's stream translator offers the upstream-call path. Pure: no HTTP, no sockets.

A dialect (Ollama ``/api``, Anthropic Messages, OpenAI Responses) turns the upstream's chat completion
stream into its own framing. The call path feeds it each SSE ``data:`` payload as it arrives and writes
whatever bytes come back, so the framing lives in translation and the relaying in one place.
"""

from __future__ import annotations

from typing import Protocol


class StreamTranslator(Protocol):
    """One streamed answer's translation, event by event."""

    content_type: str  # the media type of the bytes it writes (NDJSON, SSE)

    def feed(self, payload: bytes) -> bytes:
        """One upstream SSE ``data:`` payload (a JSON chunk; never ``[DONE]``) -> client bytes (maybe b"")."""
        ...

    def finish(self, *, done: bool = False) -> bytes:
        """The upstream ended normally (``done``: with ``[DONE]``): the closing bytes (final events, usage).

        Raises if the answer is incomplete."""
        ...

    def fail(self, message: str) -> bytes:
        """The stream broke after the first byte: the dialect's in-stream error framing for ``message``."""
        ...

    def counts(self) -> tuple[int | None, int | None]:
        """Prompt and completion tokens, once known (for logs, metrics and accounting)."""
        ...
