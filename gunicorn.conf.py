"""gunicorn configuration: the production entry point (``gunicorn -c gunicorn.conf.py``).

Every value comes from the environment and ``.env``, read through the one table of variables
(falcon_ollama/settings.py), so the same file serves bare metal, Docker and Kubernetes. Settings are
validated here, in the master, before any worker starts: a bad value is one line on stderr and exit 2.
Workers are forked with the settings the master validated. gunicorn runs this file again on SIGHUP: a bad
configuration then is one line in the log and the running configuration is kept (the master lives on).
With no OPENAI_API_KEY and no OPENAI_BASE_URL, the master starts the bundled fake upstream on loopback and
the workers use it (offline demo), exactly like ``falcon-ollama serve``.
"""

import logging
import os
import signal

from falcon_ollama.cli import announce_offline_demo, exit_if_cannot_listen
from falcon_ollama.gunicorn_support import (
    MIGRATE_REQ,
    master_settings,
    metrics_dir,
    remove_private_metrics_dir,
    start_config_watcher,
    start_fake_upstream,
    stop_fake_upstream,
    use_upstream,
    worker_listeners,
)
from falcon_ollama.logs import gunicorn_log_config

_settings = master_settings()
_server = _settings.server

# Prometheus multiprocess mode: every worker writes its samples to files in this directory and one scrape
# of /metrics on any worker covers them all. It must be in the environment before a worker imports
# prometheus_client, and is emptied at start so a restart does not resurrect old samples.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir(_server.metrics_dir)

# Bind where Ollama would: OLLAMA_HOST ("host:port", ":port", bare host; default 127.0.0.1:11434).
bind = [_server.bind.gunicorn_bind]

# FALCON_OLLAMA_REUSEPORT (auto): each worker listens on a SO_REUSEPORT socket of its own (gunicorn opens it
# after the fork), so the kernel spreads new connections over the workers instead of one worker taking a
# whole burst; auto where the kernel migrates a closing socket's queue (net.ipv4.tcp_migrate_req = 1), so a
# recycled or reloaded worker drops no queued connection.
# Not with sockets handed in (systemd socket activation, gunicorn's re-exec): those are served as they are.
_own_listeners = worker_listeners(_server.reuseport) and not {"GUNICORN_FD", "LISTEN_FDS"} & set(os.environ)
reuse_port = _own_listeners

# The ASGI app, built in each worker by a factory (no app object is shared across a fork) from the settings
# the master validated.
wsgi_app = "falcon_ollama.gunicorn_worker:app()"

# uvicorn's worker for gunicorn (uvicorn-worker package; uvloop), with the httptools protocol guarded by our
# client connection bounds (header size and count, head and body timeouts, connections per worker), and
# its open-file soft limit raised to the hard limit.
worker_class = "falcon_ollama.gunicorn_worker.Worker"

# WEB_CONCURRENCY, else one async worker per core: that serves thousands of concurrent streams, and more
# workers would only add context switches.
workers = _server.workers

# preload_app stays False: each worker imports the app and opens its own upstream pool after the fork, so no
# socket or event-loop state is ever shared between processes. Start-up cost is small (no model to load).
preload_app = False

# Keep idle client connections open longer than a typical load balancer's idle timeout (60 s), so the LB
# never sends a request on a connection we are closing.
keepalive = _server.keepalive  # FALCON_OLLAMA_KEEPALIVE

# On SIGTERM, in-flight streamed answers may take minutes to finish: give them this long before workers die.
graceful_timeout = _server.graceful_timeout  # FALCON_OLLAMA_GRACEFUL_TIMEOUT

# Worker heartbeat: async workers notify from their event loop, independent of request length.
timeout = _server.worker_timeout  # FALCON_OLLAMA_WORKER_TIMEOUT

# Recycle workers now and then (bounded memory growth from fragmentation), staggered so they never all
# restart at once.
max_requests = _server.max_requests  # FALCON_OLLAMA_MAX_REQUESTS
max_requests_jitter = _server.max_requests_jitter  # FALCON_OLLAMA_MAX_REQUESTS_JITTER

# The heartbeat file lives on tmpfs when there is one: a disk-backed /tmp can stall workers under I/O load.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# gunicorn >= 27 opens a control socket under $HOME; containers run with a read-only, foreign HOME and we
# need no runtime control beyond signals, so it stays off (older gunicorn ignores the setting).
control_socket_disable = True

loglevel = _settings.log_level
accesslog = None  # our own request summary lines are the access log
errorlog = "-"
# gunicorn's own lines (master and workers) in FALCON_OLLAMA_LOG_FORMAT, where ours go: one format.
logconfig_dict = gunicorn_log_config(_settings.log_level, _settings.log_format, _settings.log_file)


def on_starting(server):
    """Say which variable sets the address when it is taken; offline demo: start the bundled fake upstream
    and point the workers at it (once: not on reload)."""
    if not {"GUNICORN_FD", "LISTEN_FDS"} & set(os.environ):  # gunicorn binds (sockets not inherited)
        exit_if_cannot_listen(_server.bind)
    if not _settings.offline:
        return
    url = start_fake_upstream()
    use_upstream(url)
    announce_offline_demo(url, _settings.log_format, logging.getLogger("gunicorn.error"))


def when_ready(server):
    """FALCON_OLLAMA_CONFIG_WATCH_SECONDS > 0: a changed catalog, tenants or keys file reloads as SIGHUP
    does (a bad file is refused there and the running configuration kept). Started once, in the master."""
    log = logging.getLogger("gunicorn.error")
    if _own_listeners:
        log.info("FALCON_OLLAMA_REUSEPORT: a listening socket per worker (SO_REUSEPORT)")
        if not worker_listeners("auto", MIGRATE_REQ):
            log.warning(
                "FALCON_OLLAMA_REUSEPORT=on without net.ipv4.tcp_migrate_req=1: connections queued on a "
                "worker's socket are reset when it exits (recycling, reload)"
            )

    def reload(paths):
        log.info("configuration file changed (%s): reloading", ", ".join(str(p) for p in paths))
        os.kill(os.getpid(), signal.SIGHUP)

    start_config_watcher(_server.config_watch_seconds, reload)


def post_worker_init(worker):
    """Freeze what the worker built at start-up out of the garbage collector's reach: the app, the catalog
    and the imported modules are never freed, and scanning them on every collection cost measurable CPU
    (docs/performance.md: -10% CPU per request, p99 66.9 -> 25.8 ms at 100 clients)."""
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    """A dead worker's live gauges (in-flight requests) must stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    stop_fake_upstream()
    remove_private_metrics_dir()
