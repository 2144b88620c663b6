"""The README's first command on a fresh machine: quiet packaging metadata, set-up that says what it does, and
``./scripts/run_local.sh`` doing what the README says it does (issue 17)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import tomllib

import httpx
import pytest
from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement

from falcon_ollama.settings import Settings
from tests.servers import REPO, free_port

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
README = (REPO / "README.md").read_text()


def test_license_is_an_spdx_string_setuptools_reads_without_a_warning() -> None:
    # A TOML table (`{ text = "MIT" }`) makes setuptools >= 77 print a 15-line deprecation warning for each
    # build step: three times during the README's first command.
    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str)
    assert canonicalize_license_expression(license_) == license_
    (setuptools,) = [
        Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")
    ]
    assert not setuptools.specifier.contains("76.9"), "SPDX strings need setuptools >= 77"


@pytest.mark.parametrize("script", ["setup_dev.sh", "run_local.sh"])
def test_set_up_says_what_it_installs(script: str) -> None:
    lines = (REPO / "scripts" / script).read_text().splitlines()
    slow = [i for i, line in enumerate(lines) if re.search(r"-m venv|pip install|setup_dev\.sh$", line)]
    assert slow
    for index in slow:
        before = lines[index - 1].strip()
        assert before.startswith("echo ") and re.search(r"installing|creating|setting up", before), (
            f"scripts/{script}: nothing printed before {lines[index].strip()!r}"
        )


def test_the_readme_first_command_serves_the_offline_demo() -> None:
    assert "```sh\n./scripts/run_local.sh\n```" in README
    default = Settings().bind
    assert f"It listens on `{default.host}:{default.port}`" in README
    if not (REPO / ".venv" / "bin" / "falcon-ollama").exists():
        pytest.skip("no .venv in the checkout (run_local.sh would create it)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_"))}
    env.update({"OLLAMA_HOST": f"127.0.0.1:{port}", "FALCON_OLLAMA_ENV_FILE": os.devnull})
    proc = subprocess.Popen(
        ["./scripts/run_local.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                tags = httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "run_local.sh did not serve"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    names = {m["name"] for m in tags.json()["models"]}
    assert "llama3.2:latest" in names  # the example catalog's alias: run_local.sh sets the catalog
    text = out.decode()
    assert text.count("OFFLINE DEMO mode") == 1, text  # the banner, once, as a box for the terminal
    assert "=" * 40 in text
