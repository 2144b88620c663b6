"""Every setting the code reads is documented in .env.example, the README's table and docs/configuration.md;
the documented defaults are the code's; docs/troubleshooting.md quotes the error texts the code writes."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import gunicorn.config
import orjson
import pytest

from falcon_ollama import access, catalog, check, cli, limits, upstream
from falcon_ollama.admission import BUSY_MESSAGE
from falcon_ollama.catalog_config import CatalogConfig
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.logs import WarnOnce
from falcon_ollama.resources import chat as chat_resources
from falcon_ollama.resources import common, embed, health, manage, upstream_call
from falcon_ollama.resources.common import read_body
from falcon_ollama.resources.embed import CONTEXT_EXCEEDED
from falcon_ollama.resources.manage import NotManagedResource
from falcon_ollama.settings import ENV_FILE_VARIABLE, VARIABLES, Settings
from falcon_ollama.translate import chat_request, chat_response, images, model_list, options
from tests.servers import REPO

CONFIGURATION = REPO / "docs" / "configuration.md"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"

# Standard variables we honour that no `.get("NAME")` in our code shows: urllib reads the proxy variables
# (upstream.resolve_proxy), OpenSSL the certificate ones (ssl.create_default_context in Upstream.start).
STANDARD_VARIABLES = frozenset(
    {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)

# Every variable, as falcon_ollama/settings.py declares it (name, parser and bounds, default, doc line).
DECLARED = {v.name: v for v in VARIABLES}
# The variables the docs call "the gunicorn variables": gunicorn's integer settings, each with a default.
GUNICORN_INT_SETTINGS = {
    v.name: (v.default, v.minimum)
    for v in VARIABLES
    if v.group == "gunicorn" and isinstance(v.default, int) and not isinstance(v.default, bool)
}
# Every variable the docs must describe: the declared ones, and the one naming the .env file itself.
DOCUMENTED = {*DECLARED, ENV_FILE_VARIABLE}
# Examples naming files that exist only on a deployed machine; every other example must be accepted.
EXAMPLES_NEEDING_FILES = frozenset(
    {
        "FALCON_OLLAMA_API_KEYS_FILE",
        "FALCON_OLLAMA_CATALOG",
        "FALCON_OLLAMA_LOG_FILE",
        "FALCON_OLLAMA_TENANTS_FILE",
    }
)


def test_no_variable_is_read_outside_the_table() -> None:
    # The one reader is Variable.read; the metrics module reads the directory the gunicorn master exported.
    read_elsewhere: dict[str, set[str]] = {}
    for path in [REPO / "gunicorn.conf.py", *(REPO / "falcon_ollama").rglob("*.py")]:
        names = set(re.findall(r'(?:environ|env)\.get\(\s*"([A-Z][A-Z0-9_]+)"', path.read_text()))
        if names:
            read_elsewhere[path.name] = names
    assert read_elsewhere == {
        "settings.py": {ENV_FILE_VARIABLE},
        "metrics.py": {"PROMETHEUS_MULTIPROC_DIR"},
    }
    assert {"OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL", "WEB_CONCURRENCY"} <= set(DECLARED)
    assert len(GUNICORN_INT_SETTINGS) == 5


def test_every_declaration_has_a_doc_line_and_a_settings_field() -> None:
    fields = {f.name: f for f in dataclasses.fields(Settings) if f.init}
    for variable in VARIABLES:
        assert variable.doc and "\n" not in variable.doc and len(variable.doc) <= 60, variable.name
        assert variable.attribute in fields, f"{variable.name}: Settings has no field {variable.attribute!r}"
        assert fields[variable.attribute].default == variable.default, variable.name
    derived = {"openai_base_url_set", "catalog"}  # from OPENAI_BASE_URL being set; loaded from catalog_path
    assert set(fields) - {v.attribute for v in VARIABLES} == derived


def test_every_setting_is_in_env_example() -> None:
    example = (REPO / ".env.example").read_text()
    missing = sorted(n for n in DOCUMENTED if f"{n}=" not in example)
    assert not missing, f"not documented in .env.example: {missing}"


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = sorted(n for n in DOCUMENTED if n not in readme)
    assert not missing, f"not documented in README.md: {missing}"


# --- docs/configuration.md ---------------------------------------------------------------------------

_HEADING = re.compile(r"^#{2,6} (.+)$", re.MULTILINE)


def configuration_sections() -> dict[str, str]:
    """Each variable that has a heading of its own in configuration.md -> the text up to the next heading."""
    text = CONFIGURATION.read_text()
    headings = list(_HEADING.finditer(text))
    sections: dict[str, str] = {}
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", heading.group(1)):
            sections[name] = text[heading.end() : end]
    return sections


def _field(name: str, label: str) -> str:
    section = configuration_sections()[name]
    match = re.search(rf"^- \*\*{re.escape(label)}\*\*: (.+)$", section, re.MULTILINE)
    assert match, f"configuration.md: the section of {name} has no '- **{label}**:' line"
    return match.group(1)


def documented_default(name: str) -> str | None:
    """The ``- **Default**:`` value: the first backticked text, or None when it starts with ``unset``."""
    text = _field(name, "Default")
    if text.startswith("unset"):
        return None
    match = re.match(r"`([^`]*)`", text)
    assert match, f"configuration.md: the default of {name} is neither `value` nor 'unset ...': {text!r}"
    return match.group(1)


def test_every_setting_has_a_section_in_configuration_md() -> None:
    documented = set(configuration_sections())
    missing = sorted((DOCUMENTED | STANDARD_VARIABLES) - documented)
    assert not missing, f"no '#### `NAME`' section in docs/configuration.md: {missing}"


def test_every_configuration_section_gives_type_default_example_and_rule() -> None:
    for name in configuration_sections():
        for label in ("Type", "Default", "Example", "Start-up fails when"):
            _field(name, label)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_documented_default_is_the_declared_default(name: str) -> None:
    variable = DECLARED[name]
    documented = documented_default(name)
    if documented is None:
        assert not variable.default, (
            f"configuration.md says {name} is unset by default, the code has {variable.default!r}"
        )
        return
    # Parse the documented value with the code's own parser: "5m" and 300.0 are the same default.
    parsed, _ = variable.read({name: documented})
    assert parsed == variable.default, (
        f"configuration.md: {name} defaults to {documented!r}, the code to {variable.default!r}"
    )


def test_documented_env_file_default_is_the_code_default() -> None:
    settings_source = (REPO / "falcon_ollama" / "settings.py").read_text()
    assert 'named = env_file or env.get("FALCON_OLLAMA_ENV_FILE")' in settings_source
    assert 'Path(named or ".env")' in settings_source
    assert documented_default(ENV_FILE_VARIABLE) == ".env"


@pytest.mark.parametrize("name", sorted(set(DECLARED) - EXAMPLES_NEEDING_FILES))
def test_documented_example_is_accepted(name: str) -> None:
    match = re.fullmatch(r"`([A-Z][A-Z0-9_]+)=([^`]*)`", _field(name, "Example"))
    assert match and match.group(1) == name, f"configuration.md: the example of {name} is not `{name}=...`"
    DECLARED[name].read({name: match.group(2)})  # raises SettingsError if the example is wrong


# --- docs/troubleshooting.md -------------------------------------------------------------------------


def troubleshooting() -> str:
    return TROUBLESHOOTING.read_text()


def _from_source(module: Any, fragment: str) -> str:
    """A message the code builds inline: check that the code still contains it before the docs are asked."""
    source = Path(module.__file__).read_text()
    assert fragment in source, f"{module.__name__} no longer contains {fragment!r}: update this test"
    return fragment


def _rendered(module: Any, template: str, **values: Any) -> str:
    """An f-string of the code (checked to be there), filled in with default values."""
    return _from_source(module, template).format(**values)


def _raised(function: Any, *args: Any) -> str:
    with pytest.raises((OllamaError, ProxyError)) as caught:
        function(*args)
    return caught.value.message


def _over_limit_message(what: str) -> str:
    """The error of a stream that keeps more than FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES (its default)."""
    translator = chat_response.StreamTranslator(chat_response.ReplyShape("m", "chat"))
    return translator._over_limit(what).message


def _connector_error(err: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(_CONNECTION_KEY, err)


_CONNECTION_KEY = aiohttp.client_reqrep.ConnectionKey("upstream", 443, True, True, None, None, None)


def error_texts_from_the_code() -> list[str]:
    """The client- and operator-facing texts troubleshooting.md must quote, each taken from the code."""
    defaults = Settings()
    limit = defaults.limits
    overloaded = orjson.dumps(
        {"error": {"message": "The engine is currently overloaded, please try again later"}}
    )
    nested: dict[str, Any] = {}
    for _ in range(defaults.max_json_depth):
        nested = {"x": nested}
    too_large = SimpleNamespace(content_length=defaults.max_body_bytes + 1)
    refused = _connector_error(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 8000)"))
    dns = _connector_error(OSError(-2, "Name or service not known"))
    tls = aiohttp.ClientSSLError(_CONNECTION_KEY, OSError(1, "certificate verify failed"))

    def mapped(status: int, model: str | None = "gpt-4o", body: bytes = b"") -> str:
        return upstream.map_status_error(status, body, {}, model).message

    return [
        # admission, access control
        BUSY_MESSAGE,
        access._MISSING,
        access._INVALID,
        orjson.loads(access._HOST_FORBIDDEN)["error"],
        # upstream status mapping
        mapped(404, "llama3.2"),
        mapped(401),
        mapped(429),
        mapped(413),
        mapped(504),
        mapped(422),
        mapped(404, None),  # the model list (no model) answered 404: a base URL without /v1
        mapped(503, body=overloaded),
        # upstream transport failures
        upstream.map_transport_error(refused).message,
        upstream.map_transport_error(dns).message,
        upstream.map_transport_error(tls).message.split(": ", 1)[0],
        upstream.map_transport_error(aiohttp.ConnectionTimeoutError("t")).message,
        upstream.map_transport_error(aiohttp.SocketTimeoutError("t")).message,
        upstream.map_transport_error(aiohttp.ServerDisconnectedError()).message,
        # timeouts and broken streams
        _rendered(
            upstream, "the upstream did not answer within {timeout:g} s", timeout=defaults.first_byte_timeout
        ),
        _rendered(
            upstream,
            "the upstream sent nothing for {self._idle:g} s",
            self=SimpleNamespace(_idle=defaults.idle_timeout),
        ),
        _from_source(upstream, "the upstream answer took longer than the total timeout"),
        chat_response.StreamIncomplete().message,
        _from_source(chat_response, "the upstream sent a malformed stream event (invalid JSON)"),
        chat_response.upstream_error_message({}),
        _from_source(chat_response, "the upstream sent an answer without choices"),
        _from_source(model_list, "upstream returned an invalid model list (no 'data' array)"),
        _from_source(upstream, "the upstream answer is larger than the limit of "),
        _from_source(upstream, "the upstream stream is larger than the limit of "),
        _from_source(catalog, "the upstream lists more models than FALCON_OLLAMA_MAX_MODELS or its list is"),
        _from_source(upstream_call, "the upstream stream is invalid: "),
        _from_source(upstream_call, "stream failed after the first byte: "),
        _over_limit_message("tool-call arguments"),
        _from_source(chat_response, "the answer text kept for the context"),
        _from_source(upstream_call, "the upstream sent %d bytes after [DONE]; ignored").replace("%d", "N"),
        # input limits
        _raised(asyncio.run, read_body(too_large, defaults.max_body_bytes)),
        _raised(chat_request._messages, [{"role": "user"}] * (defaults.max_messages + 1), limit),
        _raised(limits.check_images, [""] * (defaults.max_images + 1), limit),
        _raised(limits.check_images, ["A" * (defaults.max_image_bytes * 4 // 3 + 4)], limit),
        _raised(limits.check_text, "x" * (defaults.max_text_chars + 1), "prompt", limit),
        _raised(limits.parse_json, orjson.dumps({"a": nested}), limit),
        _raised(limits.parse_json, b"[" + b"0," * defaults.max_json_values + b"0]", limit),
        _rendered(
            embed,
            "too many inputs (limit {limit} per request): send them in several requests",
            limit=defaults.max_embed_inputs,
        ),
        _raised(limits._reject_duplicates, [("model", 1), ("model", 2)]),
        _raised(limits.check_content_type, "application/xml"),
        _raised(images.image_data_uri, "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=", 0),
        _from_source(common, "missing request body"),
        # what the translation refuses, adds or drops
        _raised(lambda: options.map_options({"top_k": "x"}, reasoning=False)),
        *sorted(options.UNMAPPABLE),
        chat_request.JSON_INSTRUCTION,
        CONTEXT_EXCEEDED,
        # model list, readiness, model management
        _from_source(catalog, "model list refresh failed: "),
        _from_source(health, "the model list has not been loaded yet"),
        _from_source(health, "no recent answer from the upstream"),
        _from_source(manage, "pull model manifest: file does not exist"),
        NotManagedResource("/api/push", ("POST",))._message,
        # falcon-ollama check
        check._explain(upstream.map_status_error(401, b"", {}, None), defaults).replace(
            defaults.openai_base_url, "<url>"
        ),
    ]


def test_troubleshooting_quotes_the_error_texts_of_the_code() -> None:
    text = troubleshooting()
    texts = error_texts_from_the_code()
    assert len(texts) >= 40
    missing = [t for t in texts if t not in text]
    assert not missing, f"docs/troubleshooting.md does not quote: {missing}"


def test_troubleshooting_quotes_the_offline_banner() -> None:
    text = troubleshooting()
    for line in cli.OFFLINE_BANNER.splitlines():
        assert line.split("{url}")[0] in text, line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OLLAMA_HOST", "0.0.0.0:99999"),
        ("OPENAI_BASE_URL", "api.openai.com/v1"),
        ("FALCON_OLLAMA_CONNECT_TIMEOUT", "10s"),
        ("FALCON_OLLAMA_IDLE_TIMEOUT", "0"),
        ("FALCON_OLLAMA_MAX_QUEUE", "-3"),
        ("FALCON_OLLAMA_MAX_IN_FLIGHT", "0"),
        ("FALCON_OLLAMA_STREAM_USAGE", "maybe"),
        ("FALCON_OLLAMA_RESPONSES_MODE", "maybe"),
        ("FALCON_OLLAMA_REPORTED_VERSION", "0.33.0-rc2"),
        ("OLLAMA_KEEP_ALIVE", "5 min"),
        ("FALCON_OLLAMA_LOG_LEVEL", "trace"),
        ("FALCON_OLLAMA_API_KEYS", "short"),
        ("FALCON_OLLAMA_AUTH_EXEMPT_PATHS", "health"),
        ("OLLAMA_ORIGINS", "example.com"),
    ],
)
def test_troubleshooting_quotes_start_up_errors(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.load_settings_or_exit(os.devnull)
    assert exited.value.code == cli.EXIT_CONFIG_ERROR
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"falcon-ollama: configuration error: {name}: ")
    assert line in troubleshooting()


def test_troubleshooting_quotes_env_file_and_gunicorn_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = troubleshooting()
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("# comment\n" * 6 + "not a setting\n")
    with pytest.raises(SystemExit):
        cli.load_settings_or_exit(".env")
    assert capsys.readouterr().err.strip() in text

    monkeypatch.setenv("WEB_CONCURRENCY", "0")
    with pytest.raises(SystemExit) as exited:
        cli.load_settings_or_exit(os.devnull)
    assert exited.value.code == cli.EXIT_CONFIG_ERROR
    line = capsys.readouterr().err.strip()  # stderr, as the docs say
    assert line and line in text
    monkeypatch.delenv("WEB_CONCURRENCY")

    with pytest.raises(ValueError) as not_a_number:
        int("auto")  # what gunicorn itself does with WEB_CONCURRENCY, before gunicorn.conf.py runs
    assert f"ValueError: {not_a_number.value}" in text
    assert 'int(os.environ.get("WEB_CONCURRENCY", 1))' in inspect.getsource(gunicorn.config)

    # The other gunicorn variables: the same reader, one line and exit 2.
    for name, value in (("FALCON_OLLAMA_KEEPALIVE", "75s"), ("FALCON_OLLAMA_MAX_REQUESTS", "-1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as exited:
            cli.load_settings_or_exit(os.devnull)
        assert exited.value.code == cli.EXIT_CONFIG_ERROR
        line = capsys.readouterr().err.strip()
        assert line.startswith(f"falcon-ollama: configuration error: {name}: ") and line in text
        assert line in CONFIGURATION.read_text() or line.split(": ", 3)[3] in CONFIGURATION.read_text()
        monkeypatch.delenv(name)


def test_troubleshooting_quotes_the_log_warnings(caplog: pytest.LogCaptureFixture) -> None:
    text = troubleshooting()
    completion = chat_resources._Completion.__new__(chat_resources._Completion)
    completion._warn_once = WarnOnce(logging.getLogger("test_docs.options"))
    plan = chat_request.ChatPlan("chat/completions", {}, False, False, False, 0, dropped=["num_ctx"])
    config = CatalogConfig(aliases={"llama3.2": "gpt-4o-mini"})
    models = catalog.Catalog(config, upstream.Upstream(Settings()), ttl=300.0, max_models=10)
    with caplog.at_level(logging.WARNING):
        completion._warn_dropped(plan)
        models._listings[0].raw = [{"id": "gpt-4o"}]
        asyncio.run(models._install())
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    for message in warnings:
        assert message in text


def test_troubleshooting_quotes_the_check_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    assert check.run_check(os.devnull, out=out) == check.EXIT_OK
    note = out.getvalue().split("note: ", 1)[1].splitlines()[0]
    assert note in troubleshooting()
    assert note in CONFIGURATION.read_text()
