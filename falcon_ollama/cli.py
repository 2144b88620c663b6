"""Command line: ``falcon-ollama serve | check | usage | fake-upstream | --version``.

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
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence

from falcon_ollama import __version__
from falcon_ollama.settings import BindAddress, Settings, SettingsError

EXIT_CONFIG_ERROR = 2
EXIT_CANNOT_LISTEN = 1

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
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`falcon-ollama check | head -1`): not an error worth a traceback. Point stdout
        # at /dev/null so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


def _build_parser() -> argparse.ArgumentParser:
    import fake_openai

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

    usage = sub.add_parser(
        "usage", help="tenants' requests and tokens per hour and model, from the usage ledger"
    )
    usage.add_argument("--env-file", default=None, help="read settings from this file (default: .env)")
    usage.add_argument(
        "--since", default=None, help="an ISO time (UTC unless it says) or an age: 90m, 2h, 1d"
    )
    usage.add_argument("--tenant", default=None, help="only this tenant")
    usage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    usage.set_defaults(func=_cmd_usage)
    fake = sub.add_parser("fake-upstream", help="run the bundled fake OpenAI-compatible upstream")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=18000)
    fake_openai.build_arg_parser_options(fake)
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
    from falcon_ollama.redaction import redactor_for

    settings = load_settings_or_exit(args.env_file)
    configure_logging(settings.log_level, settings.log_format, settings.log_file, redactor_for(settings))
    exit_if_cannot_listen(settings.server.bind)
    http_protocol = guarded_http_protocol(settings)  # client connection bounds, as under gunicorn
    fake_thread = None
    if settings.offline:
        from fake_openai import FakeConfig, FakeUpstreamThread

        fake_thread = FakeUpstreamThread(FakeConfig(token_delay_ms=20.0))
        fake_thread.__enter__()
        settings = dataclasses.replace(settings, openai_base_url=fake_thread.base_url)
        announce_offline_demo(fake_thread.base_url, settings.log_format, logging.getLogger("falcon_ollama"))
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.server.bind.uvicorn_host,
            port=settings.server.bind.port,
            log_level=settings.log_level,
            log_config=None,  # keep configure_logging's handlers: uvicorn's lines in the chosen format too
            lifespan="on",
            http=http_protocol,
            timeout_keep_alive=settings.server.keepalive,  # FALCON_OLLAMA_KEEPALIVE, as gunicorn
            access_log=False,
        )
    finally:
        if fake_thread is not None:
            fake_thread.__exit__(None, None, None)
    return 0


def announce_offline_demo(url: str, log_format: str, logger: logging.Logger) -> None:
    """The offline banner: a box on stderr for a terminal (text), else one warning line in the JSON log."""
    if log_format == "json":
        lines = OFFLINE_BANNER.format(url=url).splitlines()[1:-1]
        logger.warning(" ".join(line.strip() for line in lines), extra={"fields": {"fake_upstream": url}})
    else:
        print(OFFLINE_BANNER.format(url=url), file=sys.stderr, flush=True)


def cannot_listen_reason(bind: BindAddress) -> str | None:
    """Why the server could not listen on ``bind`` (a port taken, an address not on this host), else None.

    Binding a throw-away socket first lets both start paths name the variable that sets the address, which
    uvicorn's and gunicorn's own bind errors do not."""
    host = bind.uvicorn_host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and gunicorn bind
        try:
            sock.bind((host, bind.port))
        except OSError as exc:
            what = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            return f"cannot listen on {bind.gunicorn_bind}: {what}; OLLAMA_HOST sets the address (host:port)"
    return None


def exit_if_cannot_listen(bind: BindAddress) -> None:
    reason = cannot_listen_reason(bind)
    if reason is not None:
        print(f"falcon-ollama: {reason}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CANNOT_LISTEN)


def _cmd_check(args: argparse.Namespace) -> int:
    from falcon_ollama.check import run_check

    return run_check(args.env_file, as_json=args.json)


def _cmd_usage(args: argparse.Namespace) -> int:
    from falcon_ollama.usage_report import run_usage

    settings = load_settings_or_exit(args.env_file)
    return run_usage(settings, since=args.since, tenant=args.tenant, fmt=args.format)


def _cmd_fake_upstream(args: argparse.Namespace) -> int:
    import fake_openai

    config = fake_openai.config_from_args(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(fake_openai.serve_forever(args.host, args.port, config))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
