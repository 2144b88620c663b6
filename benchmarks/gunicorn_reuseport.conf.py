"""A variant of ``gunicorn.conf.py`` for measurement: each worker also accepts on its own SO_REUSEPORT socket.

Why: with one shared listening socket, a burst of new connections (a load balancer's pool opening, wrk
starting 100 connections) goes to whichever worker wakes first, and uvloop accepts the whole backlog in one
go: 96 of 100 connections on one worker and 4 on the other was measured, which halves the throughput of two
workers and doubles the tail latency. With SO_REUSEPORT the kernel spreads new connections over the
sockets of the group by a hash of the 4-tuple.

How: gunicorn's ``reuse_port`` sets SO_REUSEPORT on the master's socket; after each worker is set up it
opens a second socket bound to the same address and serves both. The master's socket stays in the group
(workers keep accepting on it, so nothing queued there is stranded), so each worker gets about
1 / (workers + 1) of new connections on its own plus its share of the common one.

Caveat for production: when a worker exits (``max_requests`` recycling, a crash) connections still queued
on its own socket are reset, unless the kernel migrates them (Linux >= 5.14: ``sysctl
net.ipv4.tcp_migrate_req=1``). Measure with ``python benchmarks/overhead.py --gunicorn-config
benchmarks/gunicorn_reuseport.conf.py``.
"""

import socket
from pathlib import Path

_base = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
exec(compile(_base.read_text(), str(_base), "exec"))  # everything from the production configuration

reuse_port = True


def post_worker_init(worker):
    own = []
    for listener in worker.sockets:
        sock = socket.socket(listener.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(listener.getsockname())
        sock.listen(2048)
        sock.setblocking(False)
        own.append(sock)
    worker.sockets = [*worker.sockets, *own]
