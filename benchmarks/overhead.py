"""Side-by-side overhead of falcon-ollama, for humans (not CI): ``python benchmarks/overhead.py``.

Starts, on loopback only:

* the bundled fake upstream in benchmark mode (canned answers, 50 tokens, uvloop): the "direct" path;
* nginx (Debian's package) as a plain reverse-proxy hop to it (keep-alive upstream pool, no buffering):
  the floor any proxy pays;
* falcon-ollama exactly as production starts it, ``gunicorn -c gunicorn.conf.py`` (2 workers).

Then drives each one with the same load from wrk (Debian's package): the same chat request, as OpenAI JSON to
the fake and to nginx and as Ollama JSON to falcon-ollama, at concurrency 1, 10 and 100, non-stream, stream
(events back to back), stream paced like a model (5 ms per token) and ``/api/embed`` (``--embed-inputs`` 16 of
``--embed-dims`` 768; to the fake and nginx as OpenAI ``/v1/embeddings`` answered in JSON numbers). Targets
take turns cell by cell, so machine noise hits all three alike. For each cell: req/s, p50/p99 latency, errors,
and the CPU time the hop spent per request (all threads of all its processes, from ``/proc``). A last phase
holds 1,000 concurrent streams through the proxy and records errors and resident memory per worker.

Prints a Markdown table, and writes a JSON file and a PNG chart (latency and CPU per request against
concurrency: ours beside the direct path and the plain hop). Takes about 3 minutes with the defaults;
``--repeat 3`` repeats every cell and reports medians with their spread.

    apt-get install nginx-light wrk      # or nginx
    python benchmarks/overhead.py --repeat 3 --png reports/overhead.png --json reports/overhead.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _harness as h
import orjson

TARGETS = ("direct", "nginx", "proxy")
MODES = {
    # mode: (stream, token delay in ms)
    "non-stream": (False, 0.0),
    "stream": (True, 0.0),
    "stream-paced": (True, 5.0),
    # POST /api/embed, --embed-inputs x --embed-dims (the proxy asks the upstream for base64 float32 and
    # answers JSON numbers; direct and nginx relay OpenAI's answer of JSON numbers, of about the same size)
    "embed": (False, 0.0),
}
EMBED_MODEL = "nomic-embed-text"  # an alias of text-embedding-3-small in conf/models.toml


def embed_body(openai: bool, count: int) -> bytes:
    inputs = [f"text number {i}: the quick brown fox" for i in range(count)]
    if openai:
        return orjson.dumps({"model": "text-embedding-3-small", "input": inputs, "encoding_format": "float"})
    return orjson.dumps({"model": EMBED_MODEL, "input": inputs})


@dataclass
class Cell:
    mode: str
    concurrency: int
    target: str
    requests: int = 0  # completed answers
    answers: float = 0.0  # answers delivered, counting cut ones by their share of the bytes
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    hop_cpu_us: float = 0.0  # CPU of the hop (nginx or the proxy) per request; 0 for direct
    upstream_cpu_us: float = 0.0  # CPU of the fake upstream per request
    other_cpu_pct: float = 0.0  # CPU used by processes outside the benchmark, % of one core
    connections: list[int] = field(default_factory=list)  # per proxy worker, sampled mid-run


# -- processes ----------------------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        sys.exit("nginx is not installed: apt-get install nginx-light (or nginx)")
    return found


def start_nginx(directory: Path, port: int, upstream_port: int, workers: int) -> subprocess.Popen[bytes]:
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / sub).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = f"""
daemon off;
master_process on;
{user}worker_processes {workers};
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    keepalive_requests 10000000;
    upstream fake {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
    path = directory / "nginx.conf"
    path.write_text(conf)
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    h.wait_for_port(port, proc=proc)
    return proc


def fake_config(port: int, **changes: Any) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_fake/config", data=orjson.dumps(changes), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        resp.read()


def tree(pid: int) -> list[int]:
    return [pid, *h.children(pid)]


# -- wrk ------------------------------------------------------------------------------------------------


def lua_script(directory: Path, name: str, body: bytes) -> Path:
    path = directory / f"{name}.lua"
    text = body.decode().replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = \'{text}\'\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(output: str) -> dict[str, float]:
    out: dict[str, float] = {"errors": 0}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            out[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif "requests in" in line:
            out["requests"] = int(parts[0])
            out["seconds"] = _ms(parts[3].rstrip(","))
            match = re.search(r"([\d.]+)([KMGT]?B) read", line)
            if match:
                out["bytes"] = float(match.group(1)) * _BYTES[match.group(2)]
        elif line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            out["errors"] += int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            out["errors"] += sum(int(n) for n in re.findall(r"\d+", line))
    return out


def busy_ns() -> int:
    """CPU time the whole machine spent not idle so far (all cores), in nanoseconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) * 1_000_000_000 // ticks


REPO_PREFIX = "repo:"  # a proxy-b "configuration" naming another checkout (--compare-repo)


class Bench:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.dir = directory
        self.procs: list[subprocess.Popen[bytes]] = []
        self.fake_port, self.nginx_port = h.free_port(), h.free_port()
        # Proxies by target name: "proxy" (--gunicorn-config) and "proxy-b" (--compare-config, if any).
        configs = {"proxy": args.gunicorn_config}
        if args.compare_config:
            configs["proxy-b"] = args.compare_config
        elif args.compare_repo:
            configs["proxy-b"] = REPO_PREFIX + str(Path(args.compare_repo).resolve())
        self.proxy_configs = configs
        self.proxy_ports = {name: h.free_port() for name in configs}
        self.proxies: dict[str, subprocess.Popen[bytes]] = {}
        self.targets = ("direct", "nginx", *configs)
        self.scripts: dict[tuple[str, str], Path] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        for mode in MODES:
            openai, ollama = self.body(mode, True), self.body(mode, False)
            self.scripts["direct", mode] = lua_script(directory, f"openai-{mode}", openai)
            for name in configs:
                self.scripts[name, mode] = lua_script(directory, f"ollama-{mode}", ollama)
            self.scripts["nginx", mode] = self.scripts["direct", mode]

    def body(self, mode: str, openai: bool) -> bytes:
        if mode == "embed":
            return embed_body(openai, self.args.embed_inputs)
        stream = MODES[mode][0]
        return h.upstream_body(stream) if openai else orjson.dumps(h.ollama_chat(stream))

    def start(self) -> None:
        a = self.args
        self.fake = h.start_fake(self.fake_port, tokens=h.TOKENS)
        self.procs.append(self.fake)
        self.nginx = start_nginx(self.dir, self.nginx_port, self.fake_port, a.workers)
        self.procs.append(self.nginx)
        for name, config in self.proxy_configs.items():
            log = self.dir / f"{name}.log"
            proxy = start_proxy(self.proxy_ports[name], self.fake_port, a.workers, log, config)
            self.proxies[name] = proxy
            self.procs.append(proxy)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            h.stop(proc)

    @property
    def proxy(self) -> subprocess.Popen[bytes]:
        return self.proxies["proxy"]

    def url(self, target: str, mode: str) -> str:
        embed = mode == "embed"
        if target in self.proxies:
            return f"http://127.0.0.1:{self.proxy_ports[target]}/api/{'embed' if embed else 'chat'}"
        port = self.fake_port if target == "direct" else self.nginx_port
        return f"http://127.0.0.1:{port}/v1/{'embeddings' if embed else 'chat/completions'}"

    def hop_pids(self, target: str) -> list[int]:
        if target in self.proxies:
            return tree(self.proxies[target].pid)
        if target == "nginx":
            return tree(self.nginx.pid)
        return []

    def answer_size(self, target: str, mode: str) -> int:
        """Bytes of one whole answer on the wire (head included), measured once per path and mode."""
        key = (target, mode)
        if key not in self.sizes:
            url = self.url(target, mode)
            port = int(url.split(":")[2].split("/")[0])
            path = "/" + url.split("/", 3)[3]
            body = self.body(mode, target not in self.proxies)
            with h.RawClient(port) as client:
                status, _ = client.request(h.post(path, body))
                self.sizes[key] = client.last_size if status == 200 else 0
        return self.sizes[key]

    def wrk(self, target: str, mode: str, concurrency: int, seconds: float, cell: Cell | None) -> Cell:
        threads = 1 if concurrency <= 100 else 2
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "--timeout", "30s"]
        cmd += ["-s", str(self.scripts[target, mode]), self.url(target, mode)]
        hop, fake = self.hop_pids(target), [self.fake.pid]
        ours = [*(pid for p in self.proxies.values() for pid in tree(p.pid)), *tree(self.nginx.pid)]
        ours.append(self.fake.pid)
        size = self.answer_size(target, mode)
        time.sleep(self.args.settle)  # the previous run's cut streams are cleaned up outside the window
        hop0, fake0, ours0, busy0 = h.cpu_ns(hop), h.cpu_ns(fake), h.cpu_ns(ours), busy_ns()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        connections: list[int] = []
        if target in self.proxies and cell is not None:
            time.sleep(min(1.0, seconds / 2))
            port, workers = self.proxy_ports[target], h.children(self.proxies[target].pid)
            connections = connections_per_worker(port, workers)
        output, _ = proc.communicate()
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
        wrk_cpu = (children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime) * 1e9
        elapsed_ours = h.cpu_ns(ours) - ours0
        busy = busy_ns() - busy0
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed:\n{output}")
        parsed = parse_wrk(output)
        if cell is None:
            cell = Cell(mode="", concurrency=concurrency, target=target)
        cell.requests = int(parsed.get("requests", 0))
        cell.seconds = parsed.get("seconds", seconds * 1000) / 1000
        cell.rps = parsed.get("rps", 0.0)
        cell.p50_ms = parsed.get("p50_ms", 0.0)
        cell.p99_ms = parsed.get("p99_ms", 0.0)
        cell.errors = int(parsed["errors"])
        # wrk stops in the middle of answers (a paced stream lasts ~300 ms): count answers by the bytes
        # read, so the CPU spent on cut answers is divided by the part of them that was delivered.
        cell.answers = parsed.get("bytes", 0.0) / size if size else float(cell.requests)
        n = max(cell.answers, 1.0)
        cell.hop_cpu_us = (h.cpu_ns(hop) - hop0) / 1000 / n if hop else 0.0
        cell.upstream_cpu_us = (h.cpu_ns(fake) - fake0) / 1000 / n
        # Everything else the machine did meanwhile (a rough measure of foreign load).
        cell.other_cpu_pct = max(0.0, (busy - elapsed_ours - wrk_cpu) / 1e9 / max(cell.seconds, 1e-9) * 100)
        cell.connections = connections
        return cell


def start_proxy(
    port: int, upstream_port: int, workers: int, log: Path, config: str
) -> subprocess.Popen[bytes]:
    extra = {"FALCON_OLLAMA_MAX_REQUESTS": "0"}  # no worker recycling in the middle of a measurement
    if config == "gunicorn.conf.py":
        return h.start_gunicorn(port, upstream_port, workers, log, **extra)
    # Another checkout (--compare-repo, e.g. an older commit): its own venv, its own gunicorn.conf.py.
    # Otherwise another configuration file (e.g. benchmarks/gunicorn_reuseport.conf.py).
    python, cwd, conf = sys.executable, h.REPO, str(Path(config).resolve())
    if config.startswith(REPO_PREFIX):
        cwd = Path(config.removeprefix(REPO_PREFIX))
        python, conf = str(cwd / ".venv" / "bin" / "python"), "gunicorn.conf.py"
    env = h.proxy_env(port, upstream_port, workers, **extra)
    env.pop("VIRTUAL_ENV", None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [python, "-m", "gunicorn", "-c", conf],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    h.wait_for_port(port, proc=proc)
    deadline = time.monotonic() + 30
    while len(h.children(proc.pid)) < workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            h.stop(proc)
            raise RuntimeError(f"gunicorn did not start; see {log}")
        time.sleep(0.1)
    time.sleep(1.0)
    return proc


def connections_per_worker(port: int, workers: list[int]) -> list[int]:
    """How many client connections each proxy worker holds (sockets in its fd table, from ``ss``)."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    counts = dict.fromkeys(workers, 0)
    for pid in re.findall(r"pid=(\d+)", out):
        if int(pid) in counts:
            counts[int(pid)] += 1
    return list(counts.values())


# -- the run --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    cells: list[Cell] = []
    hold: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="falcon-ollama-overhead-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start()
            for mode in args.modes:
                fake_config(bench.fake_port, token_delay_ms=MODES[mode][1], embedding_dim=args.embed_dims)
                for target in bench.targets:  # warm every path: pools open, code hot
                    bench.wrk(target, mode, 10, 1, None)
                for concurrency in args.concurrency:
                    for repeat in range(args.repeat):
                        for target in bench.targets if repeat % 2 == 0 else bench.targets[::-1]:
                            cell = bench.wrk(
                                target, mode, concurrency, args.duration, Cell(mode, concurrency, target)
                            )
                            cells.append(cell)
                            print(progress(cell), file=sys.stderr, flush=True)
            if args.hold:
                hold = hold_streams(bench, args)
        finally:
            bench.stop()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": h.machine(),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
        "args": {k: v for k, v in vars(args).items() if k not in ("json", "png")},
        "targets": list(bench.targets),
        "cells": [asdict(c) for c in cells],
        "hold": hold,
    }


def hold_streams(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """``args.hold`` concurrent streams through the proxy (and direct, for comparison), paced slowly."""
    fake_config(bench.fake_port, token_delay_ms=args.hold_token_delay_ms)
    out: dict[str, Any] = {"streams": args.hold, "token_delay_ms": args.hold_token_delay_ms}
    for target in ("direct", "proxy"):
        cell = bench.wrk(target, "stream", args.hold, args.hold_seconds, Cell("hold", args.hold, target))
        out[target] = asdict(cell)
        print(progress(cell), file=sys.stderr, flush=True)
    workers = h.children(bench.proxy.pid)
    out["worker_rss_mb"] = [round(h.rss_kb(pid)[0] / 1024, 1) for pid in workers]
    out["worker_peak_rss_mb"] = [round(h.rss_kb(pid)[1] / 1024, 1) for pid in workers]
    return out


def progress(cell: Cell) -> str:
    conns = f" conns/worker {cell.connections}" if cell.connections else ""
    return (
        f"{cell.mode:>12} c={cell.concurrency:<4} {cell.target:>6}: {cell.rps:9.1f} req/s  "
        f"p50 {cell.p50_ms:8.3f} ms  p99 {cell.p99_ms:8.3f} ms  errors {cell.errors}  "
        f"hop CPU {cell.hop_cpu_us:7.1f} µs/req  other {cell.other_cpu_pct:4.0f} %{conns}"
    )


# -- reporting ------------------------------------------------------------------------------------------


def _spread(values: list[float], fmt: str) -> str:
    mid = statistics.median(values)
    if len(values) == 1:
        return format(mid, fmt)
    return f"{format(mid, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def summarise(report: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, list[float]]]:
    groups: dict[tuple[str, int, str], dict[str, list[float]]] = {}
    for cell in report["cells"]:
        key = (cell["mode"], cell["concurrency"], cell["target"])
        group = groups.setdefault(key, {})
        for name in ("rps", "p50_ms", "p99_ms", "errors", "hop_cpu_us", "upstream_cpu_us", "other_cpu_pct"):
            group.setdefault(name, []).append(float(cell[name]))
    return groups


def markdown(report: dict[str, Any]) -> str:
    groups = summarise(report)
    lines = [
        f"Run {report['date']} on {report['machine']}; load average before: "
        f"{' '.join(report['load_before'])}. Medians of {report['args']['repeat']} run(s) of "
        f"{report['args']['duration']:g} s per cell, (min-max) when repeated. proxy: "
        f"{report['args']['gunicorn_config']}, {report['args']['workers']} workers"
        + (f"; proxy-b: {report['args']['compare_config']}" if report["args"].get("compare_config") else "")
        + (f"; proxy-b: {report['args']['compare_repo']}" if report["args"].get("compare_repo") else "")
        + ".",
        "",
        "| mode | c | path | req/s | p50 ms | p99 ms | errors | hop CPU ms/req | µs/token | other CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (mode, concurrency, target), g in groups.items():
        stream = MODES[mode][0]
        cpu = "-" if target == "direct" else _spread([v / 1000 for v in g["hop_cpu_us"]], ".3f")
        per_token = (
            _spread([v / h.TOKENS for v in g["hop_cpu_us"]], ".1f") if stream and target != "direct" else "-"
        )
        lines.append(
            f"| {mode} | {concurrency} | {target} | {_spread(g['rps'], ',.0f')} "
            f"| {_spread(g['p50_ms'], '.2f')} | {_spread(g['p99_ms'], '.2f')} | {int(sum(g['errors']))} "
            f"| {cpu} | {per_token} "
            f"| {_spread(g['other_cpu_pct'], '.0f')} |"
        )
    hops = [t for t in report.get("targets", TARGETS) if t != "direct"]
    lines += ["", "Added median latency (each hop's p50 minus the direct p50), ms, and the ratio:", ""]
    lines += ["| mode | c | " + " | ".join(f"{t} - direct" for t in hops) + " | proxy / direct |"]
    lines += ["|---|---|" + "---|" * (len(hops) + 1)]
    for mode, concurrency in dict.fromkeys((m, c) for m, c, _ in groups):
        p50 = {t: statistics.median(groups[mode, concurrency, t]["p50_ms"]) for t in ("direct", *hops)}
        added = " | ".join(f"{p50[t] - p50['direct']:.3f}" for t in hops)
        lines.append(f"| {mode} | {concurrency} | {added} | {p50['proxy'] / p50['direct']:.3f} |")
    hold = report.get("hold")
    if hold:
        lines += [
            "",
            f"Holding {hold['streams']} concurrent streams ({h.TOKENS} tokens, {hold['token_delay_ms']:g} ms "
            "per token) through the proxy:",
            "",
            "| path | streams/s | p50 ms | p99 ms | errors | proxy CPU µs/token | RSS per worker MB (peak) |",
            "|---|---|---|---|---|---|---|",
        ]
        for target in ("direct", "proxy"):
            c = hold[target]
            rss = (
                ", ".join(
                    f"{r} ({p})"
                    for r, p in zip(hold["worker_rss_mb"], hold["worker_peak_rss_mb"], strict=True)
                )
                if target == "proxy"
                else "-"
            )
            token = f"{c['hop_cpu_us'] / h.TOKENS:.1f}" if target == "proxy" else "-"
            lines.append(
                f"| {target} | {c['rps']:.1f} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} | {c['errors']} "
                f"| {token} | {rss} |"
            )
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summarise(report)
    modes = list(dict.fromkeys(m for m, _, _ in groups))
    fig, axes = plt.subplots(len(modes), 3, figsize=(15, 4.2 * len(modes)), squeeze=False)
    styles = {
        "direct": ("tab:gray", "o"),
        "nginx": ("tab:green", "s"),
        "proxy": ("tab:blue", "D"),
        "proxy-b": ("tab:orange", "^"),
    }
    args = report["args"]
    b_name = args.get("compare_config") or args.get("compare_repo") or "-"
    labels = {
        "direct": "direct (fake upstream)",
        "nginx": "nginx hop",
        "proxy": f"falcon-ollama ({Path(args['gunicorn_config']).name})",
        "proxy-b": f"falcon-ollama ({Path(b_name).name})",
    }
    for row, mode in enumerate(modes):
        concurrencies = sorted({c for m, c, _ in groups if m == mode})
        panels = (
            ("p50_ms", "p50 latency, ms"),
            ("p99_ms", "p99 latency, ms"),
            ("hop_cpu_us", "hop CPU per request, ms"),
        )
        for col, (metric, title) in enumerate(panels):
            ax = axes[row][col]
            for target in report.get("targets", TARGETS):
                if metric == "hop_cpu_us" and target == "direct":
                    continue
                ys = [statistics.median(groups[mode, c, target][metric]) for c in concurrencies]
                if metric == "hop_cpu_us":
                    ys = [y / 1000 for y in ys]
                color, marker = styles[target]
                ax.plot(concurrencies, ys, marker=marker, color=color, label=labels[target])
            if metric == "hop_cpu_us":
                upstream = [groups[mode, c, "proxy"]["upstream_cpu_us"] for c in concurrencies]
                ys = [statistics.median(values) / 1000 for values in upstream]
                ax.plot(concurrencies, ys, linestyle="--", color="tab:gray", label="upstream's own CPU")
            ax.set_xscale("log")
            ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
            plotted = [y for line in ax.get_lines() for y in line.get_ydata()]
            if metric != "hop_cpu_us" and min(plotted) > 0 and max(plotted) / min(plotted) > 20:
                ax.set_yscale("log")  # from 0.05 to 50 ms; paced streams (~280 ms) stay linear
            ax.set_xlabel("concurrent clients")
            ax.set_title(f"{mode}: {title}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"falcon-ollama overhead — {report['date']} — {report['machine']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per cell (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every cell (default %(default)s)")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10, 100],
        help="comma-separated client counts (default 1,10,100)",
    )
    parser.add_argument(
        "--modes",
        type=lambda s: s.split(","),
        default=list(MODES),
        help=f"comma-separated, from {', '.join(MODES)} (default: all)",
    )
    parser.add_argument(
        "--embed-dims", type=int, default=768, help="dimensions of the embed mode's vectors (default 768)"
    )
    parser.add_argument("--embed-inputs", type=int, default=16, help="inputs per embed request (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn and nginx workers (default 2)")
    parser.add_argument(
        "--gunicorn-config",
        default="gunicorn.conf.py",
        help="configuration file for the proxy (default: the repository's gunicorn.conf.py)",
    )
    parser.add_argument(
        "--settle", type=float, default=0.5, help="pause before each measured run, seconds (default 0.5)"
    )
    parser.add_argument(
        "--compare-config",
        default=None,
        help="also measure a second proxy with this configuration, side by side (target proxy-b)",
    )
    parser.add_argument(
        "--compare-repo",
        default=None,
        help="also measure the proxy of another checkout (its .venv, its gunicorn.conf.py), side by side"
        " (target proxy-b), e.g. an older commit in a scratch worktree",
    )
    parser.add_argument("--hold", type=int, default=1000, help="concurrent streams to hold (0: skip)")
    parser.add_argument("--hold-seconds", type=float, default=15.0)
    parser.add_argument("--hold-token-delay-ms", type=float, default=50.0)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--png", type=Path, help="draw the chart here")
    args = parser.parse_args(argv)
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    report = run(args)
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if args.png:
        chart(report, args.png)
        print(f"\nchart: {args.png}", file=sys.stderr)


if __name__ == "__main__":
    main()
