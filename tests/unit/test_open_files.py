"""The client connection cap fits in the open-file limit next to the upstream pool (open_files.py)."""

from __future__ import annotations

import resource

import pytest

from falcon_ollama.open_files import RESERVED_FDS, connection_bounds, raise_soft_limit
from falcon_ollama.settings import Settings, SettingsError


def test_the_cap_is_kept_when_it_fits() -> None:
    bounds = connection_bounds(Settings(), 1 << 20)
    assert bounds.max_connections == 4096
    assert (bounds.max_header_bytes, bounds.max_headers) == (65536, 100)
    assert (bounds.head_timeout, bounds.body_timeout) == (30.0, 60.0)


def test_the_cap_is_lowered_to_fit_a_small_limit(caplog: pytest.LogCaptureFixture) -> None:
    bounds = connection_bounds(Settings(), 1024)
    # half of what is left after the reserve goes to the upstream pool, the rest to clients
    assert bounds.max_connections == (1024 - RESERVED_FDS) - (1024 - RESERVED_FDS) // 2 == 448
    assert "client connections capped at 448 per worker" in caplog.text


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before, after = raise_soft_limit()
    assert before == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == after
    assert after == hard or hard == resource.RLIM_INFINITY


def test_a_header_bound_too_small_for_a_request_is_refused() -> None:
    with pytest.raises(SettingsError, match="FALCON_OLLAMA_MAX_HEADER_BYTES: at least 1024"):
        Settings.from_mapping({"FALCON_OLLAMA_MAX_HEADER_BYTES": "512"})
