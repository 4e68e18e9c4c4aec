"""What counting alone achieves: the loss of in-context predictors that, like a
lexinvariant model, know nothing about a token's identity, only what the context so far
shows; and what the lexinvariant readout costs even a perfect one. Reference lines for
loss-vs-position curves, on exactly the windows `lexi eval --suite perplexity` scores.

  unigram  p(x) = (count_so_far(x) + 1/2) / (n + V/2)   (unseen tokens share the rest)
  bigram   mixes in counts of what followed the previous token earlier in the context
  readout  min over h of KL(unigram || softmax(h . E^T)) with E ~ N(0, I_d) over the V rows and
           h restricted to the span of the rows of tokens present in the context (all a
           lexinvariant model can know of E): the extra loss any model pays for reading the
           counter's distribution out through a random tied readout, where rows of absent
           tokens get logits that are pure noise, in nats

Run: python benchmarks/in_context_baselines.py [--tokenizer char|corpus_chars] [--seq-len 256]
       [--sequences 100] [--d 128]
Measured: benchmarks/RESULTS.md ("In-context counters").
"""
from __future__ import annotations

import argparse
import math

import numpy as np


def counter_losses(inputs_NxL: np.ndarray, targets_NxL: np.ndarray, vocab: int, bigram: bool,
                   bos_id: int | None = None) -> np.ndarray:
    """NLL (nats) of every target under the in-context counter, float[N, L]; counts restart
    at every bos in the inputs, as the model's segments do."""
    out = np.zeros(inputs_NxL.shape)
    for n, (inp, tgt) in enumerate(zip(inputs_NxL, targets_NxL)):
        uni, follow = np.zeros(vocab), {}
        for t, (x, y) in enumerate(zip(inp, tgt)):
            if x == bos_id:
                uni, follow = np.zeros(vocab), {}
            else:  # the input is now part of the context
                uni[x] += 1
                if t > 0 and inp[t - 1] != bos_id:
                    follow.setdefault(inp[t - 1], np.zeros(vocab))[x] += 1
            p = (uni + 0.5) / (uni.sum() + 0.5 * vocab)
            if bigram and x in follow:
                b = follow[x]
                lam = b.sum() / (b.sum() + 2.0)
                p = lam * b / b.sum() + (1 - lam) * p
            out[n, t] = -math.log(p[y])
    return out


def unigram_distributions(inputs_NxL: np.ndarray, positions: np.ndarray, vocab: int):
    """The unigram counter's distribution after reading inputs[:, :t + 1], float[N, T, V],
    and which tokens it has seen, bool[N, T, V]."""
    out = np.zeros((len(inputs_NxL), len(positions), vocab))
    seen = np.zeros(out.shape, bool)
    for j, t in enumerate(positions):
        counts = np.stack([np.bincount(w[:t + 1], minlength=vocab) for w in inputs_NxL]).astype(np.float64)
        out[:, j] = (counts + 0.5) / (counts.sum(1, keepdims=True) + 0.5 * vocab)
        seen[:, j] = counts > 0
    return out, seen


def readout_cost(p_MxV: np.ndarray, present_MxV: np.ndarray, d: int, seed: int = 0, steps: int = 400) -> float:
    """Mean over rows of min_h KL(p || softmax(h . E^T)), a fresh E ~ N(0, I_d) per row and
    h = sum of a_v E[v] over the present tokens v, the a_v found by Adam (the temperature is
    absorbed in their scale)."""
    import jax
    import jax.numpy as jnp
    import optax

    p = jnp.asarray(p_MxV, jnp.float32)
    m, v = p.shape
    e_MxVxD = jax.random.normal(jax.random.key(seed), (m, v, d))
    present = jnp.asarray(present_MxV, jnp.float32)

    def kl(a_MxV):
        h_MxD = jnp.einsum("mv,mvd->md", a_MxV * present, e_MxVxD)
        logq = jax.nn.log_softmax(jnp.einsum("md,mvd->mv", h_MxD, e_MxVxD), -1)
        return jnp.sum(p * (jnp.log(p) - logq), -1)

    tx = optax.adam(0.01)
    h = jnp.zeros((m, v))
    state = tx.init(h)

    @jax.jit
    def step(h, state):
        g = jax.grad(lambda h: kl(h).sum())(h)
        upd, state = tx.update(g, state)
        return optax.apply_updates(h, upd), state

    for _ in range(steps):
        h, state = step(h, state)
    return float(kl(h).mean())


def eval_windows_for(tokenizer_kind, seq_len: int, sequences: int):
    """(tokenizer, windows) exactly as `lexi eval` builds them for a KJV run with this tokenizer (a kind
    learned from KJV's train split, or a tokenizer object, e.g. a run's own scored with `--corpus kjv`)."""
    import tempfile

    from lexi import tokenizers
    from lexi.config import base_config
    from lexi.data.corpora import get_corpus
    from lexi.data.pipeline import build_token_stream, eval_windows
    from lexi.rundir import cache_dir

    c = base_config()
    c.data.corpus = "kjv"
    corpus = get_corpus(c.data)
    tok = tokenizer_kind if not isinstance(tokenizer_kind, str) else \
        tokenizers.from_config({"kind": tokenizer_kind}, lambda: corpus.documents("train"), tempfile.gettempdir())
    val = build_token_stream(corpus, "validation", tok, cache_dir(c), seq_len=seq_len)
    windows = eval_windows(val, seq_len, sequences, tok.bos_id, start_at_document=True, pad_id=tok.pad_id)
    return tok, {k: np.asarray(v) for k, v in windows.items()}


def summary(tok, windows: dict, d: int) -> dict:
    """Counter losses (first / last eighth / mean, over loss_mask) and the readout cost late in the context."""
    inp, tgt, mask = windows["inputs"], windows["targets"], windows["loss_mask"].astype(bool)
    seq_len = inp.shape[1]
    k = seq_len // 8
    out = {}
    for name, bigram in (("unigram", False), ("bigram", True)):
        nll = counter_losses(inp, tgt, tok.vocab_size, bigram, tok.bos_id)
        out[name] = {"first": float(nll[:, :k][mask[:, :k]].mean()), "last": float(nll[:, -k:][mask[:, -k:]].mean()),
                     "mean": float(nll[mask].mean()), "loss_by_position": (nll * mask).sum(0) / mask.sum(0)}
    late = np.linspace(seq_len - k, seq_len - 1, 4).astype(int)
    p, present = unigram_distributions(inp, late, tok.vocab_size)
    out["readout_cost_last"] = readout_cost(p.reshape(-1, tok.vocab_size), present.reshape(-1, tok.vocab_size), d)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default="char", help="char (ASCII, 128 ids) or corpus_chars (KJV's own characters)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--d", type=int, default=128, help="width of the random readout rows")
    args = ap.parse_args()
    tok, windows = eval_windows_for(args.tokenizer, args.seq_len, args.sequences)
    s = summary(tok, windows, args.d)
    k = args.seq_len // 8
    print(f"KJV validation, {args.sequences} windows of {args.seq_len} ({tok.name}, {tok.vocab_size} ids):")
    for name in ("unigram", "bigram"):
        r = s[name]
        print(f"  {name:8s} mean {r['mean']:.3f}  first {k} positions {r['first']:.3f}  last {k} {r['last']:.3f} nats")
    print(f"  readout cost of the unigram counter through {tok.vocab_size} random rows at d={args.d}, "
          f"last {k} positions: {s['readout_cost_last']:.3f} nats")


if __name__ == "__main__":
    main()
