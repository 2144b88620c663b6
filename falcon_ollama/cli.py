"""Command line: ``falcon-ollama serve | fake-upstream | --version``.

``serve`` runs one uvicorn process (development; production uses ``gunicorn -c gunicorn.conf.py``, the
same app). With no ``OPENAI_API_KEY`` and no ``OPENAI_BASE_URL`` it starts the bundled fake upstream on
loopback and points the proxy at it, with a banner that says so, so a newcomer can try any Ollama client.
A configuration error is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Sequence

from falcon_ollama import __version__
from falcon_ollama.settings import Settings, SettingsError

EXIT_CONFIG_ERROR = 2

OFFLINE_BANNER = """\
======================================================================================
  falcon-ollama is running in OFFLINE DEMO mode: OPENAI_API_KEY and OPENAI_BASE_URL
  are not set, so answers come from the BUNDLED FAKE UPSTREAM at {url}
  (canned text, not a real model). Set OPENAI_API_KEY (or OPENAI_BASE_URL) to serve
  real models.
======================================================================================"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG_ERROR
    result: int = args.func(args)
    return result


def _build_parser() -> argparse.ArgumentParser:
    from falcon_ollama import fake_upstream

    parser = argparse.ArgumentParser(
        prog="falcon-ollama", description="An Ollama-compatible server backed by OpenAI-compatible models."
    )
    parser.add_argument("--version", action="version", version=f"falcon-ollama {__version__}")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the proxy in one uvicorn process (development)")
    serve.add_argument("--env-file", default=None, help="read settings from this file (default: .env)")
    serve.set_defaults(func=_cmd_serve)

    check = sub.add_parser(
        "check", help="validate the configuration, reach the upstream, list the models it would serve"
    )
    check.add_argument("--env-file", default=None, help="read settings from this file (default: .env)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=_cmd_check)

    fake = sub.add_parser("fake-upstream", help="run the bundled fake OpenAI-compatible upstream")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=18000)
    fake_upstream.build_arg_parser_options(fake)
    fake.set_defaults(func=_cmd_fake_upstream)
    return parser


def load_settings_or_exit(env_file: str | None = None) -> Settings:
    """Settings from the environment, or one clear line on stderr and exit code 2."""
    try:
        return Settings.from_env(env_file=env_file)
    except SettingsError as exc:
        print(f"falcon-ollama: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from falcon_ollama.app import create_app
    from falcon_ollama.logs import configure_logging
    from falcon_ollama.open_files import guarded_http_protocol

    settings = load_settings_or_exit(args.env_file)
    configure_logging(settings.log_level, settings.log_format, settings.log_file)
    http_protocol = guarded_http_protocol(settings)  # client connection bounds, as under gunicorn
    fake_thread = None
    if settings.offline:
        from falcon_ollama.fake_upstream import FakeConfig, FakeUpstreamThread

        fake_thread = FakeUpstreamThread(FakeConfig(token_delay_ms=20.0))
        fake_thread.__enter__()
        settings = dataclasses.replace(settings, openai_base_url=fake_thread.base_url)
        print(OFFLINE_BANNER.format(url=fake_thread.base_url), file=sys.stderr, flush=True)
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.bind.uvicorn_host,
            port=settings.bind.port,
            log_level=settings.log_level,
            lifespan="on",
            http=http_protocol,
            timeout_keep_alive=75,
            access_log=False,
        )
    finally:
        if fake_thread is not None:
            fake_thread.__exit__(None, None, None)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from falcon_ollama.check import run_check

    return run_check(args.env_file, as_json=args.json)


def _cmd_fake_upstream(args: argparse.Namespace) -> int:
    from falcon_ollama import fake_upstream

    config = fake_upstream.config_from_args(args)
    print(f"fake OpenAI upstream listening on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(fake_upstream.serve_forever(args.host, args.port, config))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
