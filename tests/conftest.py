"""Shared fixtures. Tests run on CPU with tiny shapes (2 layers, width 32-64).

LEXI_CI=1 (.ci/run sets it) runs the suite as CI: Hypothesis loads the fixed "ci" profile
(the same examples every run), a test marked `needs` whose optional dependency is missing
fails instead of skipping, since CI installs every one, and the 25 slowest tests are listed.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
from xla_flags import BASE as _XLA_TEST_FLAGS  # noqa: E402  (before jax starts: tests/xla_flags.py says why)

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_XLA_TEST_FLAGS}".strip()
if os.environ.get("LEXI_TEST_JAX_CACHE", "1") != "0":
    # JAX's persistent compilation cache, shared by both xdist workers and every process a test starts
    # (set before jax is imported, so they all read it from the environment): the suite compiles the same
    # tiny programs again and again, in-process and in `lexi train` subprocesses. Keyed by the program,
    # its options and the jax/jaxlib versions, so a hit is the executable a compile would give.
    # LEXI_TEST_JAX_CACHE=0 turns it off.
    import tempfile

    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                          os.path.join(tempfile.gettempdir(), f"lexi-tests-jax-cache-{os.getuid()}"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

CI = os.environ.get("LEXI_CI") == "1"

settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, database=None)
if CI:
    settings.load_profile("ci")


def pytest_configure(config):
    if CI and not config.option.durations:  # CI's log names the slowest tests (the suite's budget is 20 min)
        config.option.durations = 25
    config.addinivalue_line("markers", "needs(available, reason): an optional dependency the test needs; "
                                       "without it the test is skipped, or fails under LEXI_CI=1")


@pytest.hookimpl(tryfirst=True)  # before any fixture is set up
def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        available, reason = mark.args
        if not available:
            if CI:
                pytest.fail(f"{reason} (LEXI_CI=1: CI installs it, so its absence is a failure)", pytrace=False)
            pytest.skip(reason)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One token/tokenizer cache for the whole session, so corpora are encoded once."""
    d = tmp_path_factory.mktemp("lexi_cache")
    os.environ["LEXI_CACHE"] = str(d)
    return d


@pytest.fixture(scope="session")
def kjv_docs():
    """The KJV training chapters, read once per session (tokenizer tests learn from them)."""
    from lexi.data.corpora import KJV

    return list(KJV().documents("train"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, cache_dir):
    """A 4-step run of configs/standard.py:tiny with a checkpoint, trained once per session through
    `lexi train`. Tests only read it (test_bad_input checks that mistakes leave it untouched)."""
    from lexi import cli

    run = tmp_path_factory.mktemp("trained") / "run"
    argv = ["train", "--config", "configs/standard.py:tiny", "--config.train.progress_bar=false", "--workdir", str(run),
            "--config.train.steps=4", "--config.train.checkpoint_every=4"]
    assert cli.main(argv) == 0
    return run
