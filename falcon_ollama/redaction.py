"""One redactor per process: the configured keys, whatever their shape, never leave in a response or a log.

Built once from the settings (the upstream key and the inbound keys, matched literally, plus a pattern for
key-shaped text as a belt: ``sk-…``, ``AIza…``, ``Bearer …``) and applied at the few places upstream text
reaches a client or a log: the upstream error mapping, the ``/v1`` error passthrough, stream chunks, stream
error lines and the log formatter. The literal keys are held here only; ``repr`` shows how many.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from falcon_ollama.secret_urls import REDACTED, url_password

if TYPE_CHECKING:
    from falcon_ollama.settings import Settings

# Shorter "keys" ("EMPTY", "none": what vLLM and LM Studio users put there) are not secrets, and replacing
# such a word everywhere would garble ordinary text.
MIN_SECRET_LENGTH = 8
# Key-shaped text: OpenAI (sk-, also the masked "sk-abc***xyz" its 401 echoes), Google (AIza), Bearer tokens.
# The token character set stops at quotes, so the pattern never eats the JSON around a key.
_BELT = r"\bsk-[A-Za-z0-9_\-*.]{3,}|\bAIza[A-Za-z0-9_\-]{16,}|\bBearer\s+[A-Za-z0-9\-._~+/]+=*"
# Every alternative of _BELT begins with one of these: text without any of them (and without a configured
# secret) cannot match, so it is returned without running the pattern (a log line: ~0.7 µs against ~20 µs).
_BELT_PREFIXES = ("sk-", "AIza", "Bearer")


class Redactor:
    """Replaces the configured secrets (literally) and key-shaped text with ``[redacted]``."""

    __slots__ = ("_all_bytes", "_all_text", "_count", "_literal_bytes", "_needles", "_text_needles")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        literals = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # JSON encoders may write '/' as '\/': look for that spelling too.
        literals |= {s.replace("/", "\\/") for s in literals}
        ordered = sorted(literals, key=len, reverse=True)  # longest first: no half-replaced key
        alternatives = [re.escape(s) for s in ordered]
        self._count = len({s for s in literals if "\\/" not in s})
        self._needles = tuple(s.encode() for s in ordered)
        self._text_needles = (*ordered, *_BELT_PREFIXES)
        self._all_text = re.compile("|".join([*alternatives, _BELT]))
        self._all_bytes = re.compile("|".join([*alternatives, _BELT]).encode())
        self._literal_bytes = re.compile("|".join(alternatives).encode()) if alternatives else None

    def text(self, text: str) -> str:
        """``text`` with every secret and key-shaped string replaced (``text`` itself when there is none)."""
        for needle in self._text_needles:
            if needle in text:
                return self._all_text.sub(REDACTED, text)
        return text

    def data(self, data: bytes) -> bytes:
        """The same for bytes (error bodies, log lines)."""
        return self._all_bytes.sub(REDACTED.encode(), data)

    def chunk(self, data: bytes) -> bytes:
        """A streamed chunk: the configured secrets always, key-shaped text only inside an error event.

        Costs a substring search per secret on a clean chunk; a model writing ``sk-...`` in an ordinary
        answer (code samples) keeps its text."""
        for needle in self._needles:
            if needle in data:
                break
        else:
            if b'"error"' not in data:
                return data
            return self.data(data)
        if b'"error"' in data:
            return self.data(data)
        assert self._literal_bytes is not None
        return self._literal_bytes.sub(REDACTED.encode(), data)

    def __repr__(self) -> str:
        return f"Redactor({self._count} secrets)"

    __str__ = __repr__


BELT_ONLY = Redactor()


def redactor_for(settings: Settings) -> Redactor:
    """The redactor of a configuration: every backend's key, every inbound key, the Redis password."""
    backend_keys = [b.api_key for b in settings.catalog.backends]
    return Redactor(
        [
            settings.openai_api_key,
            *backend_keys,
            *settings.api_keys.secrets(),
            url_password(settings.redis_url),
        ]
    )
