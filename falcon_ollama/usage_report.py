"""``falcon-ollama usage``: the usage ledger (falcon_ollama/ledger.py) as a table, CSV or JSON.

It reads the ledger the configuration names (Redis when ``FALCON_OLLAMA_REDIS_URL`` is set, else the SQLite
file of ``FALCON_OLLAMA_LEDGER_PATH``), so run it with the proxy's environment or ``--env-file``.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

from falcon_ollama.ledger import Usage, make_ledger, parse_since, totals
from falcon_ollama.redaction import redactor_for
from falcon_ollama.settings import Settings

EXIT_OK = 0
EXIT_PROBLEM = 1
_HEAD = ("hour", "tenant", "model", "requests", "prompt_tokens", "completion_tokens")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_usage(
    settings: Settings, *, since: str | None, tenant: str | None, fmt: str, out: TextIO = sys.stdout
) -> int:
    try:
        start = parse_since(since) if since else _EPOCH
    except ValueError as exc:
        print(f"falcon-ollama usage: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    ledger = make_ledger(
        settings.redis_url, settings.ledger_path, timeout=max(1.0, settings.limit_store_timeout)
    )

    async def read() -> list[Usage]:
        try:
            return await ledger.rows(start, tenant)
        finally:
            await ledger.close()

    try:
        rows = asyncio.run(read())
    except Exception as exc:
        message = redactor_for(settings).text(f"{type(exc).__name__}: {exc}")
        print(
            f"falcon-ollama usage: cannot read the ledger ({ledger.description}): {message}", file=sys.stderr
        )
        return EXIT_PROBLEM
    write_report(rows, fmt, out, since=start if since else None)
    return EXIT_OK


def _cells(row: Usage) -> tuple[str, str, str, int, int, int]:
    hour = row.hour.strftime("%Y-%m-%dT%H:00Z")
    return hour, row.tenant, row.model, row.requests, row.prompt_tokens, row.completion_tokens


def write_report(rows: list[Usage], fmt: str, out: TextIO, *, since: datetime | None = None) -> None:
    requests, prompt, completion = totals(rows)
    if fmt == "json":
        payload = {
            "since": since.isoformat() if since else None,
            "rows": [dict(zip(_HEAD, _cells(r), strict=True)) for r in rows],
            "totals": {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion},
        }
        out.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_HEAD)
        writer.writerows(_cells(r) for r in rows)
        return
    table = [tuple(str(c) for c in _HEAD), *(tuple(str(c) for c in _cells(r)) for r in rows)]
    table.append(("total", "", "", str(requests), str(prompt), str(completion)))
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEAD))]
    for number, line in enumerate(table):
        if number == len(table) - 1:
            out.write("  ".join("-" * w for w in widths) + "\n")
        cells = [
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
