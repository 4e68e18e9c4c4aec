"""ZeTT's validation during training: sampled tokenizers, and fixed targets beside them.

`val_loss` stays what it always was, bits per byte of the validation text under
`eval_batches` ordinary sampled tokenizers (comparable with earlier runs). Each fixed target
in VALIDATION_TARGETS adds `eval_batches` batches of the same validation steps' text encoded
with that tokenizer and its own curve, `val_bpb_<name>`: a hypernetwork can do well on
sampled unigram vocabularies and badly on a byte-level one (8.72 bits/byte on `byte` against
FVT's 6.18 for the first `small` run, README "ZeTT"), and without its own curve that shows
only in `lexi zett eval` after training. The batches have the sampled batches' shapes, so
evaluation compiles once.
"""
from __future__ import annotations

import math

import numpy as np

from lexi.zett.sampler import ZettBatches

SAMPLED = "sampled"
VALIDATION_TARGETS = ("byte",)  # names for lexi.tokenizers.load, as `lexi zett eval --tokenizer` takes them


def bytes_per_id(tok) -> np.ndarray:
    """int64[V]: UTF-8 bytes each id of `tok` adds to decoded text (0 for specials)."""
    return np.array([len(p) for p in tok.token_bytes().pieces], np.int64)


def validation_batches(source: ZettBatches, n: int, targets=VALIDATION_TARGETS) -> list[dict]:
    """n batches under the sampled tokenizers of steps 0..n-1, then n per fixed target (the
    same steps' text); each batch names its target under "target"."""
    from lexi import tokenizers

    out = [{**source.batch_at(i), "target": SAMPLED} for i in range(n)]
    for name in targets:
        tok = tokenizers.load(name)
        per_id = bytes_per_id(tok)
        out += [{**source.batch_with(tok, per_id, i), "target": name} for i in range(n)]
    return out


def validation_metrics(totals: dict[str, tuple[float, float]]) -> dict[str, float]:
    """{target: (summed nll in nats, bytes)} -> {"val_loss": sampled bits/byte, "val_bpb_<t>": ...}."""
    bpb = {k: nll / math.log(2) / max(n_bytes, 1.0) for k, (nll, n_bytes) in totals.items()}
    out = {"val_loss": bpb.pop(SAMPLED)} if SAMPLED in bpb else {}
    out.update({f"val_bpb_{k}": v for k, v in bpb.items()})
    return out
