"""Profile the proxy under load, for humans: ``python benchmarks/profile_proxy.py --mode stream-paced``.

Runs the app in this process under uvicorn (uvloop + our guarded httptools protocol, as a gunicorn worker
runs it), the bundled fake upstream in its own process, and wrk as the load; profiles the serving process
for ``--seconds`` with

* ``pyinstrument`` (statistical, default): a call tree, written as text and HTML;
* ``cprofile``: deterministic, with call counts (slower per call, so shares are distorted, counts are not).

Reports go to ``reports/profile-<mode>.{txt,html}``. py-spy works too, against a running gunicorn worker
(``py-spy record -p <worker pid> -f speedscope``); on uvloop its samples land mostly in C frames, so the
Python-level split is easier to read from the two profilers here.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness as h
import orjson

MODES = {"non-stream": (False, 0.0), "stream": (True, 0.0), "stream-paced": (True, 5.0)}


async def serve_and_profile(args: argparse.Namespace, fake_port: int, out: Path) -> None:
    import uvicorn

    from falcon_ollama.app import create_app
    from falcon_ollama.http_guard import guarded_protocol
    from falcon_ollama.open_files import connection_bounds

    port = h.free_port()
    settings = h.settings(f"http://127.0.0.1:{fake_port}/v1")
    app = create_app(settings)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        http=guarded_protocol(connection_bounds(settings, soft)),  # what a gunicorn worker runs
        lifespan="on",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.05)
    stream, _ = MODES[args.mode]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        body = orjson.dumps(h.ollama_chat(stream)).decode().replace("'", "\\'")
        script.write_text(
            f"wrk.method = 'POST'\nwrk.body = '{body}'\nwrk.headers['Content-Type'] = 'application/json'\n"
        )
        total = args.seconds + 3
        cmd = ["wrk", "-t1", f"-c{args.concurrency}", f"-d{total:g}s", "-s", str(script)]
        load = await asyncio.create_subprocess_exec(
            *cmd, f"http://127.0.0.1:{port}/api/chat", stdout=subprocess.PIPE
        )
        await asyncio.sleep(2)  # warm-up: connections open, upstream pool full
        started_cpu = time.process_time()
        if args.profiler == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
            await asyncio.sleep(args.seconds)
            profiler.stop()
            out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
            out.with_suffix(".html").write_text(profiler.output_html())
        else:
            profile = cProfile.Profile()
            profile.enable()
            await asyncio.sleep(args.seconds)
            profile.disable()
            with out.with_suffix(".txt").open("w") as stream_out:
                stats = pstats.Stats(profile, stream=stream_out)
                stats.sort_stats("tottime").print_stats(60)
                stats.sort_stats("cumulative").print_stats(60)
        cpu = time.process_time() - started_cpu
        output, _ = await load.communicate()
    server.should_exit = True
    await task
    print(output.decode(), file=sys.stderr)
    print(f"CPU of the serving process while profiled: {cpu:.2f} s (profiler overhead included)")
    print(f"profile written to {out.with_suffix('.txt')}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=list(MODES), default="stream-paced")
    parser.add_argument("--profiler", choices=["pyinstrument", "cprofile"], default="pyinstrument")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=None, help="report path without suffix")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    out = args.out or h.REPO / "reports" / f"profile-{args.mode}-{args.profiler}"
    out.parent.mkdir(parents=True, exist_ok=True)
    fake_port = h.free_port()
    fake = h.start_fake(fake_port, token_delay_ms=MODES[args.mode][1])
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        import uvloop

        uvloop.run(serve_and_profile(args, fake_port, out))
    finally:
        h.stop(fake)


if __name__ == "__main__":
    main()
