"""scripts/bench_baseline.py: the CI gate on CPU per request, run as CI runs it (a process, exit status)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_baseline.py"


def _run(
    tmp: Path, action: str, reference: float, figures: dict[str, float]
) -> subprocess.CompletedProcess[str]:
    (tmp / "figures.json").write_text(json.dumps({"reference_us": reference, "figures": figures}))
    cmd = [sys.executable, str(SCRIPT), action, "--figures", str(tmp / "figures.json")]
    cmd += ["--baseline", str(tmp / "baseline.json")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


BASE = {"app_non-stream_metrics": 300.0, "e2e_cpu_stream": 1500.0, "embed_app_16x768": 1000.0}


def test_update_then_check_passes_noise_and_a_slower_machine(tmp_path: Path) -> None:
    assert _run(tmp_path, "update", 2000.0, BASE).returncode == 0
    saved = json.loads((tmp_path / "baseline.json").read_text())["ratios"]
    assert saved == {"app_non-stream_metrics": 0.15, "e2e_cpu_stream": 0.75, "embed_app_16x768": 0.5}
    noisy = {key: value * 1.3 for key, value in BASE.items()}  # 30 % worse: noise on a shared machine
    assert _run(tmp_path, "check", 2000.0, noisy).returncode == 0
    slower_machine = {key: value * 3 for key, value in BASE.items()}  # everything 3x, the reference too
    result = _run(tmp_path, "check", 6000.0, slower_machine)
    assert result.returncode == 0 and "REGRESSION" not in result.stdout


def test_a_clear_regression_fails_and_is_named(tmp_path: Path) -> None:
    assert _run(tmp_path, "update", 2000.0, BASE).returncode == 0
    result = _run(tmp_path, "check", 2000.0, {**BASE, "embed_app_16x768": 1600.0})
    assert result.returncode == 1
    assert "regression over 1.5x the baseline: embed_app_16x768" in result.stdout
    assert result.stdout.count("REGRESSION") == 1


def test_figures_missing_on_either_side_are_reported_not_failed(tmp_path: Path) -> None:
    assert _run(tmp_path, "check", 2000.0, BASE).returncode == 0  # no baseline yet
    assert _run(tmp_path, "update", 2000.0, BASE).returncode == 0
    partial = {"app_non-stream_metrics": 300.0, "app_stream_metrics": 900.0}
    result = _run(tmp_path, "check", 2000.0, partial)
    assert result.returncode == 0
    assert "e2e_cpu_stream           not measured in this run" in result.stdout
    assert "app_stream_metrics       not measured in the baseline" in result.stdout
