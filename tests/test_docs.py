"""The generated documentation matches the code it documents."""
from pathlib import Path

from lexi import config_reference

ROOT = Path(__file__).resolve().parent.parent


def test_config_reference_is_current():
    """docs/configs.md is what `python -m lexi.config_reference` writes now (every variant of
    every config file loads; every field is listed with its default)."""
    fresh = config_reference.render(ROOT)
    committed = (ROOT / "docs" / "configs.md").read_text()
    assert fresh == committed, "docs/configs.md is stale: run python -m lexi.config_reference --out docs/configs.md"


def test_every_default_field_has_an_explanation():
    from lexi.config import base_config

    notes = config_reference.field_comments()
    flat = config_reference._flat(base_config().to_dict())
    missing = [k for k in flat if not notes.get(k)]
    assert not missing, f"fields without a comment in lexi/config.py or lexi/model/config.py: {missing}"
