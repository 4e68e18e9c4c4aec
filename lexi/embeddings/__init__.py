"""Embedding families, chosen by `config.embedding.kind`. See base.py for the interface.

"predicted" is built by ZeTT (lexi/zett/task.py) from its base's config, not trained by a run.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from lexi.embeddings import readout
from lexi.embeddings.base import Embedding
from lexi.embeddings.frozen import FrozenEmbedding
from lexi.embeddings.lexinvariant import LexinvariantEmbedding
from lexi.embeddings.predicted import PredictedEmbedding
from lexi.embeddings.readout import UsedIds
from lexi.embeddings.regularized import RegularizedEmbedding
from lexi.embeddings.trainable import TrainableEmbedding
from lexi.errors import UserError

Builder = Callable[..., Embedding]
_REGISTRY: dict[str, Builder] = {}
_CLASSES: dict[str, type] = {}


def register(kind: str, builder: Builder | type, cls: type | None = None) -> None:
    """`config.embedding.kind = kind` builds this family. `builder` is an Embedding subclass
    (its dataclass fields are the config fields, checked by name), or a function
    builder(emb_cfg: dict, vocab_size, d_model, special_ids, used_ids) -> Embedding module with
    `cls`, the module class, saying whether the family takes a restricted readout."""
    if isinstance(builder, type):
        builder, cls = _simple(builder), builder
    _REGISTRY[kind] = builder
    if cls is not None:
        _CLASSES[kind] = cls


def _fields(cls, cfg: dict) -> dict:
    allowed = {f.name for f in dataclasses.fields(cls)} - {"vocab_size", "d_model", "parent", "name", "used_ids"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise UserError(f"config.embedding: unknown field(s) {unknown} for kind {cfg.get('kind')!r}; "
                        f"valid: {sorted(allowed)}")
    return cfg


def restricts_readout(emb_cfg: dict) -> bool:
    """Whether `config.embedding` asks for a readout over the training split's ids only
    (lexi/embeddings/readout.py); a bad value, or a family that cannot take it, stops here."""
    option = emb_cfg.get("readout_ids", "all")
    if option not in readout.OPTIONS:
        raise UserError(f"config.embedding.readout_ids must be one of {readout.OPTIONS}, got {option!r}")
    kind = emb_cfg.get("kind", "trainable")
    refusal = getattr(_CLASSES.get(kind), "restricted_readout_refusal", "it is not one of lexi's own families")
    if option != "all" and refusal:
        raise UserError(f"config.embedding.readout_ids={option!r} does not apply to kind {kind!r}: {refusal}; "
                        "use readout_ids='all'")
    return option != "all"


def _simple(cls):
    def build(cfg: dict, vocab_size: int, d_model: int, special_ids: tuple = (),
              used_ids: UsedIds | None = None) -> Embedding:
        cfg = {k: v for k, v in cfg.items() if k not in ("kind", "readout_ids")}
        if "special_ids" in cls.__dataclass_fields__:
            cfg["special_ids"] = tuple(int(i) for i in special_ids)
        restricted = {"used_ids": used_ids} if used_ids is not None else {}
        return cls(vocab_size=vocab_size, d_model=d_model, **_fields(cls, cfg), **restricted)
    return build


register("trainable", TrainableEmbedding)
register("lexinvariant", LexinvariantEmbedding)
register("regularized", RegularizedEmbedding)
register("frozen", FrozenEmbedding)
register("predicted", PredictedEmbedding)


def build(emb_cfg: dict, vocab_size: int, d_model: int, special_ids: tuple = (),
          used_ids: UsedIds | None = None) -> Embedding:
    """`special_ids`: the tokenizer's pad/bos/eos ids, for families that must not touch them.
    `used_ids`: the training split's ids, which config.embedding.readout_ids='train_split' needs
    (lexi.train.setup_run.load_used_ids counts and saves them with the run)."""
    kind = emb_cfg.get("kind", "trainable")
    if kind not in _REGISTRY:
        raise UserError(f"config.embedding.kind {kind!r} is unknown; choose one of {sorted(_REGISTRY)}")
    if not restricts_readout(emb_cfg):
        used_ids = None
    elif used_ids is None:
        raise UserError("config.embedding.readout_ids='train_split' reads out the ids the training split uses, "
                        "which a run directory counts (lexi train, eval, sample); this command has no training "
                        "split: set readout_ids='all' (for lexi compile: the full readout, an upper bound)")
    elif used_ids.vocab_size != vocab_size:
        raise UserError(f"the saved readout id set is for {used_ids.vocab_size} ids but the tokenizer has "
                        f"{vocab_size}; delete {readout.FILE} from the run directory to count again")
    return _REGISTRY[kind](dict(emb_cfg), vocab_size, d_model, special_ids, used_ids)
