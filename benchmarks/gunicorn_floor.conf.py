"""``gunicorn.conf.py`` serving ``benchmarks/floor_app.py`` (the stack with none of our code) under uvicorn's
own gunicorn worker: the floor our per-request and per-token figures are compared with."""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
_base = _here.parent / "gunicorn.conf.py"
exec(compile(_base.read_text(), str(_base), "exec"))  # bind, workers, timeouts as in production

sys.path.insert(0, str(_here))
wsgi_app = "floor_app:app"
worker_class = "uvicorn_worker.UvicornWorker"
