"""Model definitions: the shared backbone and the LM wrapper."""
from __future__ import annotations

from lexi.model.config import BackboneConfig
from lexi.model.lm import LanguageModel


def build_model(cfg, vocab_size: int, special_ids: tuple = (), used_ids=None) -> LanguageModel:
    """LanguageModel for `config.model` (the backbone) and `config.embedding` (the family);
    `used_ids` (a lexi.embeddings.readout.UsedIds) for a readout restricted to them."""
    from lexi import embeddings

    backbone = BackboneConfig.from_dict(dict(cfg.model))
    embedding = embeddings.build(dict(cfg.embedding), vocab_size, backbone.d_model, special_ids, used_ids)
    return LanguageModel(backbone, embedding)
