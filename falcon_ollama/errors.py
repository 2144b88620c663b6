"""The one error type every layer raises: an HTTP status plus Ollama's ``{"error": "..."}`` body.

Resources, translation and the upstream client all raise ``OllamaError``; one Falcon error handler turns it
into the response. Keeping the status and the client-visible message together means the mapping from a
failure to what the client sees is decided once, where the failure is understood.
"""

from __future__ import annotations


class OllamaError(Exception):
    """A failure with the status and message an Ollama client should see."""

    __slots__ = ("headers", "message", "status")

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"OllamaError({self.status}, {self.message!r})"


def model_not_found(name: str) -> OllamaError:
    """Ollama's wording for an unknown model on generate/chat/show (single quotes, name as sent)."""
    return OllamaError(404, f"model '{name}' not found")
