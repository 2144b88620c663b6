"""URLs that may hold a password (``FALCON_OLLAMA_REDIS_URL``): the password alone, or the URL without it.

Kept apart from :mod:`falcon_ollama.redaction` (which needs the settings) so that the settings and the limit
store can show such a URL without an import cycle.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"


def url_password(url: str | None) -> str | None:
    """The password in a URL such as ``redis://:secret@host:6379/0`` (percent-decoded), or None."""
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redacted_url(url: str) -> str:
    """``url`` with its password (if any) replaced: ``redis://user:[redacted]@host:6379/0``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return REDACTED
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))
