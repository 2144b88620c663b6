"""Errors: the domain failures every layer raises, and ``OllamaError`` (a failure with its HTTP status).

Translation and validation raise the domain errors (``InvalidRequest``, ``TooLarge``, ``Unsupported``,
``ModelNotFound``, ``UpstreamProtocolError``): they say *what* went wrong and nothing about HTTP. The HTTP
edge (``resources/error_map.py``) holds the one table from each kind to a status, and each dialect renders
the body in its own shape (Ollama ``{"error": ...}``, OpenAI's error object, Anthropic's). ``OllamaError``
remains for code that already knows the status it wants (the upstream mapping, the resources).
"""

from __future__ import annotations

import orjson


class ProxyError(Exception):
    """A domain failure with a message meant for the client, as is."""

    __slots__ = ("headers", "message")

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidRequest(ProxyError):
    """The request is malformed or a field has a wrong type or value."""


class TooLarge(ProxyError):
    """The request is over one of the input limits."""


class ModelNotFound(ProxyError):
    """The model named by the request is not served here."""


class Unsupported(ProxyError):
    """The model lacks a capability the request needs, or this server has no such feature."""


class UpstreamProtocolError(ProxyError):
    """The upstream's answer is not what its API promises (not JSON, a wrong shape, over a bound)."""


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


def embed_model_not_found(name: str) -> OllamaError:
    """Ollama's wording on /api/embed and /api/embeddings (``handleScheduleError``): Go's %q quoting."""
    quoted = orjson.dumps(name).decode()
    return OllamaError(404, f"model {quoted} not found, try pulling it first")


def model_not_found(name: str) -> OllamaError:
    """Ollama's wording for an unknown model on generate/chat/show (single quotes, name as sent)."""
    return OllamaError(404, f"model '{name}' not found")
