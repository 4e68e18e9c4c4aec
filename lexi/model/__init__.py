"""Model definitions: the shared backbone and the LM wrapper."""
from __future__ import annotations

from lexi.model.config import BackboneConfig
from lexi.model.lm import LanguageModel


def build_model(cfg, vocab_size: int, special_ids: tuple = ()) -> LanguageModel:
    """LanguageModel for `config.model` (the backbone) and `config.embedding` (the family)."""
    from lexi import embeddings

    backbone = BackboneConfig.from_dict(dict(cfg.model))
    embedding = embeddings.build(dict(cfg.embedding), vocab_size, backbone.d_model, special_ids)
    return LanguageModel(backbone, embedding)
