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


@pytest.fixture(scope="session")
def kjv_docs():
    """The KJV training chapters, read once per session (tokenizer tests learn from them)."""
    from lexi.data.corpora import KJV

    return list(KJV().documents("train"))
