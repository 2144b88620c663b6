"""Against the real OpenAI API: run only where OPENAI_API_KEY is set and the API is reachable.

For operators verifying a deployment (``pytest -m live``). These machines have no internet, so CI skips them.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable

import ollama
import pytest

from fake_openai import FakeUpstreamThread
from tests.servers import ProxyThread

pytestmark = pytest.mark.live

BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")


def _reachable() -> bool:
    if not os.environ.get("OPENAI_API_KEY"):
        return False
    parsed = urllib.parse.urlparse(BASE_URL)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=3):
            return True
    except OSError:
        return False


requires_openai = pytest.mark.skipif(not _reachable(), reason="OPENAI_API_KEY not set or API not reachable")


@requires_openai
def test_live_list_and_show(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    proxy = start_proxy(
        fake, openai_base_url=BASE_URL.rstrip("/"), openai_api_key=os.environ["OPENAI_API_KEY"]
    )
    client = ollama.Client(host=proxy.url)
    names = [m.model for m in client.list().models]
    assert names, "the upstream lists no usable model"
    assert not any(n.startswith(("whisper", "tts-", "dall-e")) for n in names)
    show = client.show(names[0])
    assert show.modelinfo is not None and show.modelinfo["general.architecture"]
