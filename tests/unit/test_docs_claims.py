"""What the docs say about each variable's validation, default, minimum and maximum, checked against what the
code declares and does (issue 17: docs said the gunicorn variables were "not validated", that a bad value
gave a traceback and exit 1, that an empty value was an error, that 0 disabled the worker heartbeat).

The facts come from the code, never from this file: each declared variable (falcon_ollama/settings.py
VARIABLES, the gunicorn ones included) is probed through ``Settings.from_mapping`` (which values it accepts,
what it says about the others, what an empty value gives), and the probes are checked against the declared
default and bounds.
The docs read are docs/*.md, README.md and .env.example."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
from dataclasses import dataclass
from functools import cache

import gunicorn.config
import pytest

from falcon_ollama import cli
from falcon_ollama.settings import BY_NAME, VARIABLES, Settings, SettingsError
from tests.servers import REPO
from tests.unit.test_docs import GUNICORN_INT_SETTINGS, configuration_sections

DOCS = {path.name: path.read_text() for path in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]}
ENV_EXAMPLE = (REPO / ".env.example").read_text()


@dataclass(frozen=True)
class Declared:
    """One variable as the code treats it."""

    name: str
    default: object
    numeric: bool = False
    integer: bool = False
    accepts_zero: bool = False
    maximum: int | None = None
    refusal: str | None = None  # the message for a value below the minimum, without the value
    empty_is_default: bool = True
    one_line_errors: bool = True  # a bad value: one line naming it, exit 2 (never a traceback)


def _accepts(name: str, value: str) -> bool:
    try:
        Settings.from_mapping({name: value})
    except SettingsError:
        return False
    return True


def _refusal(name: str, value: str) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_mapping({name: value})
    return str(refused.value).removeprefix(f"{name}: ").rsplit(", got ", 1)[0]


def _settings_variable(name: str) -> Declared:
    attribute = BY_NAME[name].attribute
    default = BY_NAME[name].default
    empty = getattr(Settings.from_mapping({name: "  "}), attribute) == default
    numeric = _accepts(name, "7") and not _accepts(name, "true") and not _accepts(name, "5m")
    if not numeric:
        return Declared(name, default, empty_is_default=empty)
    accepts_zero = _accepts(name, "0")
    maximum = None
    if not _accepts(name, str(10**12)):
        low, high = 1, 10**12  # the largest accepted value, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if _accepts(name, str(middle)) else (low, middle - 1)
        maximum = low
    return Declared(
        name,
        default,
        numeric=True,
        integer=not _accepts(name, "1.5"),
        accepts_zero=accepts_zero,
        maximum=maximum,
        refusal=_refusal(name, "-1" if accepts_zero else "0"),
        empty_is_default=empty,
    )


def _web_concurrency() -> Declared:
    """Probed like the others; but gunicorn reads it from the process environment itself while it imports,
    before gunicorn.conf.py: there int("") or int("auto") raises (a traceback), unlike a line in .env."""
    crashes = 'int(os.environ.get("WEB_CONCURRENCY", 1))' in inspect.getsource(gunicorn.config)
    probed = _settings_variable("WEB_CONCURRENCY")
    return dataclasses.replace(probed, empty_is_default=not crashes, one_line_errors=not crashes)


# Read by falcon-ollama without a check of its own (a failure is the library's traceback or error).
NOT_VALIDATED = frozenset(
    {
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, Declared]:
    table = {v.name: _settings_variable(v.name) for v in VARIABLES}
    table["WEB_CONCURRENCY"] = _web_concurrency()
    assert len(GUNICORN_INT_SETTINGS) >= 5 and len(table) >= 50
    return table


def test_the_declarations_are_derived_from_the_code(declared: dict[str, Declared]) -> None:
    # A few facts the docs rely on, as the probes found them (guards the probes themselves).
    assert declared["FALCON_OLLAMA_MAX_QUEUE"].accepts_zero and declared["FALCON_OLLAMA_MAX_QUEUE"].integer
    assert (
        not declared["FALCON_OLLAMA_IDLE_TIMEOUT"].accepts_zero
        and not declared["FALCON_OLLAMA_IDLE_TIMEOUT"].integer
    )
    assert declared["FALCON_OLLAMA_MAX_JSON_DEPTH"].maximum is not None
    assert not declared["FALCON_OLLAMA_WORKER_TIMEOUT"].accepts_zero
    assert declared["FALCON_OLLAMA_MAX_REQUESTS"].accepts_zero
    assert not declared["WEB_CONCURRENCY"].empty_is_default
    assert all(d.empty_is_default for n, d in declared.items() if n != "WEB_CONCURRENCY")


def test_the_probes_find_the_declared_bounds(declared: dict[str, Declared]) -> None:
    # What the table says (name, default, minimum, maximum) is what the reader does.
    for variable in VARIABLES:
        name, probed = variable.name, declared[variable.name]
        assert probed.default == variable.default, name
        low, high = variable.minimum, variable.maximum
        if low is None:
            assert not probed.numeric, f"{name}: a number without declared bounds"
            continue
        exclusive = getattr(variable.parse, "exclusive", False)
        assert _accepts(name, str(low)) != exclusive, name
        assert not _accepts(name, str(low - 1)), name
        if probed.numeric:
            assert probed.accepts_zero == (low <= 0 and not exclusive), name
            assert probed.maximum == high, name
        if high is not None:
            assert _accepts(name, str(high)) and not _accepts(name, str(high + 1)), name


# --- docs/configuration.md: Type and Start-up lines --------------------------------------------------


def _line(section: str, label: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(label)}\*\*: (.+(?:\n  .+)*)", section, re.MULTILINE)
    assert match, label
    return " ".join(match.group(1).split())


def test_type_lines_give_the_code_minimum_and_maximum(declared: dict[str, Declared]) -> None:
    sections = configuration_sections()
    wrong = []
    for name, d in declared.items():
        if not d.numeric:
            continue
        kind = _line(sections[name], "Type")
        if d.accepts_zero != (">= 0" in kind) or (not d.accepts_zero and "> 0" not in kind):
            wrong.append(f"{name}: Type {kind!r}, but 0 is {'accepted' if d.accepts_zero else 'refused'}")
        if d.integer != ("integer" in kind):
            wrong.append(
                f"{name}: Type {kind!r}, but the code {'wants' if d.integer else 'takes more than'} integers"
            )
        if d.maximum is not None and f"<= {d.maximum}" not in kind:
            wrong.append(f"{name}: Type {kind!r} does not say the maximum, {d.maximum}")
    assert not wrong, "\n".join(wrong)


def test_start_up_lines_say_what_the_code_does(declared: dict[str, Declared]) -> None:
    sections = configuration_sections()
    text = DOCS["configuration.md"]
    wrong = []
    for name, d in declared.items():
        rule = _line(sections[name], "Start-up fails when")
        if d.one_line_errors and re.search(r"not validated|traceback|exit code 1", rule, re.IGNORECASE):
            wrong.append(f"{name}: says {rule!r}, but a bad value is one line and exit 2")
        if d.refusal is not None and d.refusal not in rule and d.refusal not in text:
            wrong.append(f"{name}: the refusal {d.refusal!r} is not quoted")
        if d.maximum is not None and str(d.maximum) not in rule:
            wrong.append(f"{name}: the maximum {d.maximum} is not in {rule!r}")
    assert not wrong, "\n".join(wrong)


# --- every doc: claims near a variable's name ---------------------------------------------------------


def blocks() -> list[tuple[str, str, set[str]]]:
    """(doc, block text, variables it is about): paragraphs, list items and table rows. A block of
    configuration.md is also about every variable of its ``##`` group when it names none itself."""
    out = []
    for doc, text in [*DOCS.items(), (".env.example", ENV_EXAMPLE)]:
        group: set[str] = set()
        for part in re.split(r"\n\s*\n|\n(?=\s*- |\|)|\n(?=# [A-Z])", text):
            if doc == "configuration.md" and part.startswith("## "):
                group = _group_variables(part.splitlines()[0])
            named = set(re.findall(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+|WEB_CONCURRENCY)\b", part))
            if re.search(r"gunicorn\]?(\(#gunicorn\))? (variables|ones)", part):
                named |= set(GUNICORN_INT_SETTINGS)
            if doc == "configuration.md" and not named:
                named = group - {"WEB_CONCURRENCY"}  # its own section says what is special about it
            out.append((doc, part, named))
    return out


@cache
def _group_variables(heading: str) -> set[str]:
    text = DOCS["configuration.md"]
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + 1)
    return set(
        re.findall(r"^#### .*?`([A-Z][A-Z0-9_]+)`", text[start : end if end > 0 else None], re.MULTILINE)
    )


def test_no_doc_says_a_validated_variable_is_unvalidated_or_crashes(declared: dict[str, Declared]) -> None:
    wrong = []
    for doc, block, named in blocks():
        if not re.search(r"not validated|does not validate|traceback|exit code 1\b", block, re.IGNORECASE):
            continue
        about = named & set(declared)
        if about and not (
            named & (NOT_VALIDATED | {n for n, d in declared.items() if not d.one_line_errors})
        ):
            wrong.append(f"{doc}: {sorted(about)}: {' '.join(block.split())[:160]!r}")
    assert not wrong, "a bad value of these is one line and exit 2:\n" + "\n".join(wrong)


_EMPTY_IS_AN_ERROR = re.compile(
    r"empty value(\*\*)? (is an error|included)|set but empty\)?.{0,80}?(crash|traceback|error)"
)


def test_no_doc_says_an_empty_value_is_an_error(declared: dict[str, Declared]) -> None:
    wrong = []
    for doc, block, named in blocks():
        flat = " ".join(block.split())
        if not _EMPTY_IS_AN_ERROR.search(flat) or "WEB_CONCURRENCY" in named:
            continue
        wrong += [
            f"{doc}: {n}: {flat[:160]!r}" for n in named & set(declared) if declared[n].empty_is_default
        ]
    assert not wrong, "an empty value gives the default for:\n" + "\n".join(wrong)


_ZERO_ACCEPTED = re.compile(
    r"`0` (turns|disables|refreshes|retries|refuses|keeps|means|gives)|\(0: |\b0 disables"
)


def test_zero_is_only_offered_where_the_code_accepts_it(declared: dict[str, Declared]) -> None:
    sections = configuration_sections()
    wrong = []
    for name, d in declared.items():
        if not d.numeric or d.accepts_zero:
            continue
        texts = [sections[name], *_env_example_comment(name), *_readme_rows(name)]
        wrong += [
            f"{name}: {' '.join(text.split())[:160]!r}"
            for text in texts
            if _ZERO_ACCEPTED.search(text) or f"`{name}=0`" in text
        ]
    assert not wrong, "0 is refused for:\n" + "\n".join(wrong)


# --- defaults wherever a doc states one ---------------------------------------------------------------


def _readme_rows(name: str) -> list[str]:
    return [line for line in DOCS["README.md"].splitlines() if line.startswith(f"| `{name}`")]


def _env_example_comment(name: str) -> list[str]:
    """The comment lines just above ``# NAME=`` in .env.example."""
    lines = ENV_EXAMPLE.splitlines()
    out = []
    for index, line in enumerate(lines):
        if line.startswith(f"# {name}="):
            above = index - 1
            while above >= 0 and lines[above].startswith("# ") and "=" not in lines[above].split()[1]:
                out.insert(0, lines[above])
                above -= 1
    return out


def _same_default(d: Declared, written: str | None) -> bool:
    if written is None:
        return not d.default
    return bool(BY_NAME[d.name].read({d.name: written})[0] == d.default)


def test_readme_defaults_are_the_code_defaults(declared: dict[str, Declared]) -> None:
    wrong = []
    for line in DOCS["README.md"].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]) if line.startswith("| `") else []
        values = re.findall(r"`([^`]*)`", cells[1]) if len(cells) > 1 else []
        for index, name in enumerate(names):
            if name not in declared or name == "WEB_CONCURRENCY":
                continue
            written = (
                None
                if cells[1].startswith("—") or not values  # "a new temp dir": unset
                else values[index]
                if index < len(values)
                else values[0]
            )
            if not _same_default(declared[name], written):
                wrong.append(
                    f"README.md: {name} defaults to {written!r}, the code to {declared[name].default!r}"
                )
    assert not wrong, "\n".join(wrong)
    assert len([n for n in declared if _readme_rows(n)]) >= 40


def test_env_example_defaults_are_the_code_defaults(declared: dict[str, Declared]) -> None:
    wrong = []
    for name, value in re.findall(r"^# ([A-Z][A-Z0-9_]+)=(.*)$", ENV_EXAMPLE, re.MULTILINE):
        if name not in declared or name == "WEB_CONCURRENCY":
            continue
        written = value or None
        if name == "OPENAI_API_KEY":
            continue  # a placeholder (sk-...), said to be unset above it
        if not _same_default(declared[name], written):
            wrong.append(f".env.example: {name}={value}, the code's default is {declared[name].default!r}")
    assert not wrong, "\n".join(wrong)


def test_deployment_gunicorn_table_has_the_code_defaults(declared: dict[str, Declared]) -> None:
    text = DOCS["deployment.md"]
    found = 0
    for name in GUNICORN_INT_SETTINGS:
        for written in re.findall(rf"`{name}`,? (\d+)", text):
            found += 1
            assert int(written) == declared[name].default, f"deployment.md: {name} {written}"
    assert found >= 4


def test_sizing_figures_are_the_measured_ones() -> None:
    # deployment.md once said the figures were "not measured yet" while performance.md had them.
    text = DOCS["deployment.md"]
    sizing = text[text.index("## Sizing") : text.index("\n## ", text.index("## Sizing") + 1)]
    assert "not measured" not in sizing and "placeholder" not in sizing
    figures = re.findall(r"\*\*([0-9][0-9.,]*)(?: [a-zµ/]+)*\*\*", sizing)
    assert len(figures) >= 4
    performance = DOCS["performance.md"]
    missing = [f for f in figures if f not in performance]
    assert not missing, f"deployment.md quotes figures performance.md does not have: {missing}"


def test_defaults_quoted_in_passing_are_the_code_defaults(declared: dict[str, Declared]) -> None:
    # "`FALCON_OLLAMA_KEEPALIVE` (75 s)", "`FALCON_OLLAMA_TOTAL_TIMEOUT`, 1800 s", "`FALCON_OLLAMA_X` (2)"
    wrong, found = [], 0
    for doc, text in DOCS.items():
        for name, d in declared.items():
            if not d.numeric or d.default is None:
                continue
            link = r"(?:\]\([^)]*\))?"
            pattern = rf"`{name}`{link}(?:, | \((?:default )?)`?([0-9][0-9,.]*)`?(?= s\b| seconds|\)|,)"
            for written in re.findall(pattern, text):
                found += 1
                if float(written.replace(",", "")) != float(d.default):  # type: ignore[arg-type]
                    wrong.append(f"{doc}: {name} {written}, the code's default is {d.default}")
    assert found >= 5, found
    assert not wrong, "\n".join(wrong)


def test_troubleshooting_quotes_the_json_banner(caplog: pytest.LogCaptureFixture) -> None:
    url = "http://127.0.0.1:40071/v1"
    with caplog.at_level(logging.WARNING, logger="falcon_ollama"):
        cli.announce_offline_demo(url, "json", logging.getLogger("falcon_ollama"))
    (record,) = caplog.records
    assert record.fields == {"fake_upstream": url}  # type: ignore[attr-defined]
    assert f'"message":"{record.getMessage()}","fake_upstream":"{url}"' in DOCS["troubleshooting.md"]
