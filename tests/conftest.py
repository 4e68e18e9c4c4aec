"""Shared fixtures. Tests run on CPU with tiny shapes (2 layers, width 32-64)."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One token/tokenizer cache for the whole session, so corpora are encoded once."""
    d = tmp_path_factory.mktemp("lexi_cache")
    os.environ["LEXI_CACHE"] = str(d)
    return d
