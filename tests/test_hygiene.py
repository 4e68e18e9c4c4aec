"""The suite's CI mode (LEXI_CI=1, tests/conftest.py) and .ci/run, which sets it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
CI_RUN = TESTS.parent / ".ci" / "run"

INNER = """import os

import pytest
from hypothesis import settings


@pytest.mark.needs(False, "frobnicator is not installed")
def test_missing():
    pass


@pytest.mark.needs(True, "unused")
def test_present():
    pass


def test_hypothesis_profile():
    ci = os.environ.get("LEXI_CI") == "1"
    assert (settings.default.derandomize, settings.default.deadline is None) == (ci, ci)
"""


def _inner_pytest(tmp_path, ci: bool) -> subprocess.CompletedProcess:
    """INNER's tests run by pytest with tests/conftest.py as a plugin."""
    (tmp_path / "test_inner.py").write_text(INNER)
    from hypothesis import _settings  # Hypothesis loads its own "ci" profile where it sees these

    ci_vars = {"LEXI_CI", "CI", *getattr(_settings, "_CI_VARS", {})}
    env = {k: v for k, v in os.environ.items() if k not in ci_vars}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]), **({"LEXI_CI": "1"} if ci else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "conftest", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "test_inner.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("ci", [False, True])
def test_a_missing_dependency_skips_outside_ci_and_fails_in_ci(tmp_path, ci):
    """Breaks if CI silently skips what it installed (Unifont, libtpu), or a laptop without them
    fails, or LEXI_CI=1 does not load the fixed Hypothesis profile."""
    p = _inner_pytest(tmp_path, ci)
    summary = p.stdout.strip().splitlines()[-1]
    assert "frobnicator is not installed" in p.stdout, p.stdout
    if ci:
        assert p.returncode == 1 and "2 passed" in summary and "1 error" in summary, p.stdout
    else:
        assert p.returncode == 0 and "2 passed, 1 skipped" in summary, p.stdout


def _ci_run(tmp_path, apt_get_status: int) -> tuple[subprocess.CompletedProcess, Path]:
    """.ci/run with stand-ins for sudo, apt-get (exits `apt_get_status`) and python3 (records
    LEXI_CI and stops the script), and Unifont missing; returns the run and python3's record."""
    bin_dir, record = tmp_path / "bin", tmp_path / "python3_saw"
    bin_dir.mkdir()
    stubs = {"sudo": 'exec "$@"', "apt-get": f"exit {apt_get_status}",
             "python3": f'echo "LEXI_CI=${{LEXI_CI:-}}" > {record}; exit 3'}
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", LEXI_UNIFONT=str(tmp_path / "none.otf"))
    env.pop("LEXI_CI", None)
    return subprocess.run(["bash", str(CI_RUN)], env=env, capture_output=True, text=True, timeout=60), record


def test_ci_run_stops_when_unifont_cannot_be_installed(tmp_path):
    """Breaks if .ci/run goes on to the tests (where the glyph tests would then fail, or skip)."""
    p, record = _ci_run(tmp_path, apt_get_status=100)
    assert p.returncode != 0 and "fonts-unifont could not be installed" in p.stderr, p.stderr
    assert not record.exists()  # no virtual environment, no tests


def test_ci_run_runs_the_suite_as_ci(tmp_path):
    """Breaks if .ci/run stops exporting LEXI_CI=1 to the test run."""
    p, record = _ci_run(tmp_path, apt_get_status=0)
    assert p.returncode == 3, p.stderr  # python3 was reached
    assert record.read_text().strip() == "LEXI_CI=1"
