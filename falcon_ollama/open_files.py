"""The process's open-file budget: raise the soft limit to the hard one, and fit the client cap inside it.

The common soft limit of 1,024 descriptors is a default for interactive shells, not a server's budget: with
it, 2,500 idle sockets made every request fail with EMFILE (accept and the upstream connect both need a
descriptor). Each server process raises its own soft limit at start, and caps its client connections so
that, with the upstream pool and a reserve for everything else, they fit in what it got.
"""

from __future__ import annotations

import asyncio
import logging
import resource

from falcon_ollama.http_guard import ConnectionBounds, guarded_protocol
from falcon_ollama.settings import Settings

log = logging.getLogger("falcon_ollama.connections")

# Descriptors kept for everything that is neither a client nor an upstream connection: listening sockets,
# the event loop, log files, Prometheus' multiprocess files, the heartbeat file, DNS lookups.
RESERVED_FDS = 128


def raise_soft_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; (before, after), logged when it changed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
            return soft, soft
        log.info("open-file limit raised from %d to %d", soft, target)
        return soft, target
    return soft, soft


def connection_bounds(settings: Settings, open_files: int) -> ConnectionBounds:
    """The bounds of this process: the client cap lowered, with a warning, if ``open_files`` is too few."""
    budget = max(open_files - RESERVED_FDS, 2)
    upstream = min(settings.max_connections, budget // 2)
    cap = min(settings.max_client_connections, budget - upstream)
    if cap < settings.max_client_connections:
        log.warning(
            "client connections capped at %d per worker (FALCON_OLLAMA_MAX_CLIENT_CONNECTIONS=%d does not "
            "fit in the open-file limit of %d with the upstream pool): raise the hard limit (ulimit -Hn)",
            cap,
            settings.max_client_connections,
            open_files,
        )
    return ConnectionBounds(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        head_timeout=settings.request_head_timeout,
        body_timeout=settings.request_body_timeout,
        max_connections=cap,
    )


def guarded_http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """What both start paths pass as uvicorn's ``http=``: the guarded protocol with this process's bounds."""
    _, open_files = raise_soft_limit()
    return guarded_protocol(connection_bounds(settings, open_files))
