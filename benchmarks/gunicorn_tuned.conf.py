"""``gunicorn_reuseport.conf.py`` plus ``gc.freeze()`` in every worker once the app is imported.

Why: a worker's heap holds ~100k long-lived objects from its imports (falcon, aiohttp, prometheus_client,
uvicorn); every full garbage collection walks all of them although none will ever be garbage. Moving them to
the permanent generation after start-up makes the young-object collections that streaming triggers (orjson
builds a few dicts per event) cheaper. Measured in docs/performance.md (issue 5): about -7 % CPU per
non-stream request and -4 % per streamed token.

Measure with ``python benchmarks/overhead.py --gunicorn-config benchmarks/gunicorn_tuned.conf.py``.
"""

import gc
from pathlib import Path

_variant = Path(__file__).resolve().parent / "gunicorn_reuseport.conf.py"
exec(compile(_variant.read_text(), str(_variant), "exec"))

_reuseport_post_worker_init = post_worker_init  # noqa: F821 (defined by the exec above)


def post_worker_init(worker):
    _reuseport_post_worker_init(worker)
    gc.collect()
    gc.freeze()
