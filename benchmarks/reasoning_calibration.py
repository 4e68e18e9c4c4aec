"""What the reasoning scores mean: the rule-based predictors of lexi/eval/calibration.py (the
in-context copier, "match key + arrow, copy what followed", and the in-context unigram
counter) scored by the same code as a model on the char tokenizer's LookUp (4 and 16 pairs)
and Permutation, at the start of the context and after KJV validation text. Every
results.json carries these numbers for its own examples under reasoning.calibration.

Run: python benchmarks/reasoning_calibration.py [--examples 500] [--offset 200]
Measured (500 examples, 9 s on the 2-core CPU; the same at offset 0 and 200 but for noise):
  copier: exact match and top-1 1.000 on lookup and lookup_16, exact match 0.000 on permutation
  unigram counter: exact match 0.000 everywhere; top-1 among candidates (chance in brackets)
    lookup 0.257 (0.254) uniform, 0.327 (0.279) frequency; lookup_16 0.087 (0.067), 0.175 (0.095)
So with frequency-drawn symbols, counting alone ranks the answer first above chance (a value
drawn twice is more often the one asked for): compare a model's top-1 with unigram_top1 too.
"""
import argparse
import time

import numpy as np

from lexi import tokenizers
from lexi.config import base_config
from lexi.data.corpora import get_corpus
from lexi.eval import calibration, reasoning, tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=500)
    ap.add_argument("--offset", type=int, default=200, help="characters of KJV text before each prompt")
    args = ap.parse_args()
    c = base_config()
    c.data.corpus = "kjv"
    tok = tokenizers.load("char")
    text = np.asarray([i for d in get_corpus(c.data).documents("validation") for i in [tok.bos_id] + tok.encode(d)],
                      np.int32)
    sep = tasks.Format.from_tokenizer(tok).sep
    t0 = time.perf_counter()
    for key, (task, params) in reasoning.task_specs().items():
        for sampler in reasoning.SAMPLERS:
            counts = np.bincount(text, minlength=tok.vocab_size) if sampler == "frequency" else None
            exs = tasks.make_examples(task, args.examples, 0, tok, sampler, counts, **params)
            for offset in (0, args.offset):
                ctxs = reasoning.place_prompts(exs, tok.bos_id, sep, offset=offset, text_tokens=text)
                cal = calibration.evaluate(ctxs, exs, tok.vocab_size)
                print(f"{key:11s} {sampler:9s} offset {offset:3d}  " +
                      "  ".join(f"{k} {v:.3f}" for k, v in cal.items()))
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
