"""Command-line hooks: ``falcon-ollama fake-upstream`` adds these options to its parser.

``python -m fake_openai`` runs the same server standalone (handy for benchmarks that want the
fake in a process of its own, so its CPU time can be measured separately).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from ._server import FakeUpstream
from ._types import FakeConfig

log = logging.getLogger("fake_openai")


def build_arg_parser_options(parser: argparse.ArgumentParser) -> None:
    """Add the fake's options. Destinations are prefixed ``fake_`` so they cannot clash with other options."""
    defaults = FakeConfig()
    group = parser.add_argument_group("fake upstream")
    group.add_argument(
        "--tokens",
        metavar="N",
        dest="fake_tokens",
        type=int,
        default=defaults.tokens,
        help="content tokens per answer (default %(default)s)",
    )
    group.add_argument(
        "--ttfb-ms",
        metavar="MS",
        dest="fake_ttfb_ms",
        type=float,
        default=defaults.ttfb_ms,
        help="delay before each response head, in ms (default %(default)s)",
    )
    group.add_argument(
        "--token-delay-ms",
        metavar="MS",
        dest="fake_token_delay_ms",
        type=float,
        default=defaults.token_delay_ms,
        help="delay between streamed events, in ms (default %(default)s)",
    )
    group.add_argument(
        "--embedding-dim",
        metavar="N",
        dest="fake_embedding_dim",
        type=int,
        default=defaults.embedding_dim,
        help="embedding length when the request gives no dimensions (default %(default)s)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        dest="fake_api_key",
        default=None,
        help="require this bearer key (default: accept any request)",
    )
    group.add_argument(
        "--no-usage",
        dest="fake_no_usage",
        action="store_true",
        help="never send a usage chunk in streams, like llama.cpp",
    )
    group.add_argument(
        "--answer-any-model",
        dest="fake_answer_any_model",
        action="store_true",
        help="answer unknown model names instead of 404, like llama.cpp and vLLM",
    )
    group.add_argument(
        "--no-record",
        dest="fake_no_record",
        action="store_true",
        help="do not record requests (for long load tests)",
    )
    group.add_argument(
        "--canned",
        dest="fake_canned",
        action="store_true",
        help="benchmark mode: identical requests get identical cached answers",
    )


def config_from_args(args: argparse.Namespace) -> FakeConfig:
    return FakeConfig(
        tokens=args.fake_tokens,
        ttfb_ms=args.fake_ttfb_ms,
        token_delay_ms=args.fake_token_delay_ms,
        embedding_dim=args.fake_embedding_dim,
        api_key=args.fake_api_key,
        send_usage=not args.fake_no_usage,
        answer_any_model=args.fake_answer_any_model,
        record=not args.fake_no_record,
        canned=args.fake_canned,
    )


async def serve_forever(host: str, port: int, config: FakeConfig) -> None:
    """Run a fake until cancelled (or SIGINT/SIGTERM when run as the main program)."""
    fake = FakeUpstream(config)
    await fake.start(host, port)
    log.info("fake OpenAI upstream listening on %s", fake.base_url)
    print(f"fake OpenAI upstream listening on {fake.base_url}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fake_openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop if it is installed")
    build_arg_parser_options(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    runner: asyncio.Runner
    if args.uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover
            parser.error("uvloop is not installed")
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        runner.run(serve_forever(args.host, args.port, config))
