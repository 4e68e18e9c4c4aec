"""What counting alone achieves: the loss of in-context predictors that, like a
lexinvariant model, know nothing about a character's identity, only what the context
so far shows. A reference line for lexinvariant loss-vs-position curves.

  unigram  p(x) = (count_so_far(x) + 1/2) / (n + V/2)   (unseen characters share the rest)
  bigram   mixes in counts of what followed the previous character earlier in the context

Run: python benchmarks/in_context_baselines.py [--seq-len 256] [--windows 400]
Measured (KJV validation, context 256: the split's 153 windows starting every 997th
character, under --windows 400; 2 seconds on the 2-core CPU):
  unigram mean 3.492  first 32 positions 4.300  last 32 3.200 nats/char
  bigram  mean 3.204  first 32 positions 4.290  last 32 2.773 nats/char
"""
import argparse
import math

import numpy as np

from lexi.config import base_config
from lexi.data.corpora import get_corpus


def in_context_losses(windows: list, vocab: int, bigram: bool) -> np.ndarray:
    length = len(windows[0])
    total = np.zeros(length)
    for w in windows:
        uni = np.zeros(vocab)
        follow: dict = {}
        for t, x in enumerate(w):
            p = (uni + 0.5) / (uni.sum() + 0.5 * vocab)
            if bigram and t > 0 and w[t - 1] in follow:
                b = follow[w[t - 1]]
                lam = b.sum() / (b.sum() + 2.0)
                p = lam * b / b.sum() + (1 - lam) * p
            total[t] -= math.log(p[x])
            uni[x] += 1
            if t > 0:
                follow.setdefault(w[t - 1], np.zeros(vocab))[x] += 1
    return total / len(windows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--windows", type=int, default=400)
    args = ap.parse_args()
    c = base_config()
    c.data.corpus = "kjv"
    text = "\n".join(get_corpus(c.data).documents("validation"))
    ids = np.frombuffer(text.encode("ascii", "replace"), np.uint8).astype(np.int64) % 128
    starts = range(0, len(ids) - args.seq_len, 997)
    windows = [ids[i:i + args.seq_len] for i in starts][:args.windows]
    k = args.seq_len // 8
    for name, bigram in (("unigram", False), ("bigram", True)):
        l = in_context_losses(windows, 128, bigram)
        print(f"{name:8s} mean {l.mean():.3f}  first {k} positions {l[:k].mean():.3f}  last {k} {l[-k:].mean():.3f} "
              "nats/char")


if __name__ == "__main__":
    main()
