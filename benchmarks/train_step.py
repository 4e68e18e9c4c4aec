"""Tokens/s and MFU of a config's train step, beside this machine's measured matmul peak.

    python benchmarks/train_step.py --config configs/standard.py:small [--config.x=y ...]

MFU definition: lexi/train/flops.py (3 x forward matmul FLOPs, causal attention halved).
"""
from __future__ import annotations

import argparse
import json

import jax

from harness import bench_train_step, peak, vocab_of
from lexi.config import load_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--vocab", type=int, default=0, help="vocabulary size; 0 = the config tokenizer's (char 128)")
    p.add_argument("--steps", type=int, default=5)
    args, overrides = p.parse_known_args()
    cfg = load_config(args.config, overrides)
    vocab = args.vocab or vocab_of(cfg)
    r = bench_train_step(cfg, vocab, steps=args.steps)
    pk, source = peak(cfg.model.dtype)
    r.update(device=jax.devices()[0].device_kind, peak_tflops=pk / 1e12, peak_source=source,
             mfu=r["model_tflops_per_sec"] * 1e12 / pk, config=args.config, vocab=vocab)
    print(f"{args.config}: {r['tokens_per_sec']:.0f} tokens/s, step {1e3 * r['step_s']:.1f} ms, "
          f"{r['model_tflops_per_sec'] * 1e3:.1f} GFLOP/s model, peak {pk / 1e9:.1f} GFLOP/s ({source}), "
          f"MFU {100 * r['mfu']:.1f}%")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
