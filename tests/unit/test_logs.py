"""The JSON log formatter's time field (its second is formatted once and kept)."""

from __future__ import annotations

import logging
import time

import orjson

from falcon_ollama.logs import JsonFormatter


def test_each_line_has_its_own_time_across_seconds() -> None:
    formatter = JsonFormatter()
    for created in (1733390000.998, 1733390000.999, 1733390001.0, 1733390001.5, 1733390000.25, 86399.9):
        record = logging.makeLogRecord({"name": "falcon_ollama.request", "msg": "x", "levelname": "INFO"})
        record.created, record.msecs = created, (created - int(created)) * 1000
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(record.msecs):03d}Z"
        assert orjson.loads(formatter.format(record))["time"] == expected
