"""The HTTP edge's one table: each domain error kind -> its HTTP status. Dialects render the body."""

from __future__ import annotations

from falcon_ollama.errors import (
    InvalidRequest,
    ModelNotFound,
    ProxyError,
    TooLarge,
    Unsupported,
    UpstreamProtocolError,
)

STATUS_BY_KIND: dict[type[ProxyError], int] = {
    InvalidRequest: 400,
    Unsupported: 400,
    TooLarge: 413,
    ModelNotFound: 404,
    UpstreamProtocolError: 502,
}


def status_of(error: ProxyError) -> int:
    """The status for ``error``: its own kind's, else the nearest base kind's, else 500."""
    for kind in type(error).__mro__:
        status = STATUS_BY_KIND.get(kind)
        if status is not None:
            return status
    return 500
