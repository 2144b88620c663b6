"""The library floor of our stack, for measurement only: uvicorn (httptools, uvloop) in front, aiohttp behind,
and nothing between them.

It answers any POST by sending the upstream one fixed chat completions request (streamed if the client's JSON
says ``"stream": true``) and relaying the upstream's bytes unchanged, one ASGI ``send`` per read: no routing,
validation, translation, limits, logs or metrics. What a token costs here is what uvicorn's send, aiohttp's
read path and the event loop cost before any of our code runs; ``benchmarks/gunicorn_floor.conf.py`` runs it
under gunicorn like the proxy (``overhead.py --compare-config benchmarks/gunicorn_floor.conf.py``).
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import orjson

_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
_HEAD = [(b"content-type", b"application/x-ndjson")]


class FloorApp:
    def __init__(self) -> None:
        self.url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
        self.session: aiohttp.ClientSession | None = None
        self.bodies = {stream: orjson.dumps({**_BODY, "stream": stream}) for stream in (True, False)}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
                    )
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self.session is not None:
                        await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["method"] != "POST":  # a readiness check (GET /)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stream = orjson.loads(body).get("stream", True) is not False
        assert self.session is not None
        headers = {"content-type": "application/json", "authorization": "Bearer sk-floor"}
        async with self.session.post(self.url, data=self.bodies[stream], headers=headers) as upstream:
            await send({"type": "http.response.start", "status": upstream.status, "headers": _HEAD})
            if not stream:
                await send({"type": "http.response.body", "body": await upstream.read()})
                return
            content = upstream.content
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


app = FloorApp()
