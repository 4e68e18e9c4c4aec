"""Embedding families, chosen by `config.embedding.kind`. See base.py for the interface.

"predicted" is built by ZeTT (lexi/zett/task.py) from its base's config, not trained by a run.
"""
from __future__ import annotations

from typing import Callable

from lexi.embeddings.base import Embedding
from lexi.embeddings.frozen import FrozenEmbedding
from lexi.embeddings.lexinvariant import LexinvariantEmbedding
from lexi.embeddings.predicted import PredictedEmbedding
from lexi.embeddings.regularized import RegularizedEmbedding
from lexi.embeddings.trainable import TrainableEmbedding
from lexi.errors import UserError

Builder = Callable[..., Embedding]
_REGISTRY: dict[str, Builder] = {}


def register(kind: str, builder: Builder) -> None:
    """builder(emb_cfg: dict, vocab_size, d_model, special_ids) -> Embedding module."""
    _REGISTRY[kind] = builder


def _fields(cls, cfg: dict) -> dict:
    allowed = set(cls.__dataclass_fields__) - {"vocab_size", "d_model", "parent", "name"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise UserError(f"config.embedding: unknown field(s) {unknown} for kind {cfg.get('kind')!r}; "
                        f"valid: {sorted(allowed)}")
    return cfg


def _simple(cls):
    def build(cfg: dict, vocab_size: int, d_model: int, special_ids: tuple = ()) -> Embedding:
        cfg = {k: v for k, v in cfg.items() if k != "kind"}
        if "special_ids" in cls.__dataclass_fields__:
            cfg["special_ids"] = tuple(int(i) for i in special_ids)
        return cls(vocab_size=vocab_size, d_model=d_model, **_fields(cls, cfg))
    return build


register("trainable", _simple(TrainableEmbedding))
register("lexinvariant", _simple(LexinvariantEmbedding))
register("regularized", _simple(RegularizedEmbedding))
register("frozen", _simple(FrozenEmbedding))
register("predicted", _simple(PredictedEmbedding))


def build(emb_cfg: dict, vocab_size: int, d_model: int, special_ids: tuple = ()) -> Embedding:
    """`special_ids`: the tokenizer's pad/bos/eos ids, for families that must not touch them."""
    kind = emb_cfg.get("kind", "trainable")
    if kind not in _REGISTRY:
        raise UserError(f"config.embedding.kind {kind!r} is unknown; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[kind](dict(emb_cfg), vocab_size, d_model, special_ids)
