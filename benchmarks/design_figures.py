"""The timings behind three design choices in lexi/, measured here rather than quoted in
docstrings, where they would go stale silently.

    python benchmarks/design_figures.py

1. lexi/zett/unigram.py writes ZeTT's per-step SentencePiece models straight into protobuf's
   wire format with numpy: the time to build a 32k-piece model that way, against making the
   same pieces as protobuf objects.
2. lexi/data/stream_shuffle.py has its own window shuffle: per element, grain's
   WindowShuffleIterDataset (an index_shuffle draw per position) against lexi's (one numpy
   permutation per window), for windows of 16 and 1,024 elements.
3. lexi/data/stream_blocks.py rebuilds ZeTT's vocabulary window when a new block of documents
   starts: the cold start of configs/zett.py:small's sampler (its first batch: the window's counts,
   the sampled tokenizer, the batch).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def unigram_build(n: int = 32_768 - 260) -> dict:
    from sentencepiece import sentencepiece_model_pb2 as pb

    from lexi.zett.unigram import unigram_tokenizer

    r = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    pieces = sorted({"".join(r.choice(letters, size=int(r.integers(2, 9)))) for _ in range(n * 2)})[:n]
    scored = [(p, -float(i + 1) / n) for i, p in enumerate(pieces)]
    build = _best(lambda: unigram_tokenizer(scored))

    def as_protobuf():
        m = pb.ModelProto()
        m.pieces.extend([pb.ModelProto.SentencePiece(piece=p, score=s) for p, s in scored])
        m.SerializeToString()

    proto = _best(as_protobuf)
    return {"pieces": len(scored), "build_ms": 1e3 * build, "protobuf_objects_ms": 1e3 * proto,
            "protobuf_us_per_piece": 1e6 * proto / len(scored)}


def window_shuffle(n: int = 4096) -> dict:
    import grain

    from lexi.data.stream_shuffle import WindowShuffle

    out = {}
    for window in (16, 1024):
        src = grain.MapDataset.range(n).to_iter_dataset()
        theirs = grain.experimental.WindowShuffleIterDataset(src, window_size=window, seed=0)
        ours = WindowShuffle(src, window_size=window, seed=0)
        for name, ds in (("grain", theirs), ("lexi", ours)):
            t = _best(lambda ds=ds: sum(1 for _ in ds), repeat=3)
            out[f"{name}_us_per_element_window_{window}"] = 1e6 * t / n
    return out


def zett_block_cold_start(documents: int = 200) -> dict:
    import tempfile

    from configs.zett import get_config
    from lexi import tokenizers
    from lexi.data.corpora import get_corpus
    from lexi.zett.sampler import ZettBatches

    cfg = get_config("small")
    corpus = get_corpus(cfg.data)
    with tempfile.TemporaryDirectory() as cache:  # the small_sp base's tokenizer: 4,000 unigram pieces
        base = tokenizers.from_config({"kind": "sentencepiece", "vocab_size": 4000, "model_type": "unigram"},
                                      lambda: corpus.documents("train"), cache)
        docs = list(corpus.documents("train"))[:documents]
        z = cfg.zett
        t0 = time.perf_counter()
        ZettBatches(docs, base, seq_len=cfg.data.seq_len, batch_size=cfg.train.batch_size, vocab_size=z.vocab_size,
                    pieces_per_token=cfg.hypernet.pieces, window=z.window).batch_at(0)
        cold = time.perf_counter() - t0
    return {"zett_block_cold_start_s": cold, "window_steps": z.window, "vocab_size": z.vocab_size}


def main() -> None:
    for name, fn in (("unigram model, 32k pieces", unigram_build), ("window shuffle", window_shuffle),
                     ("ZeTT block cold start", zett_block_cold_start)):
        res = fn()
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
