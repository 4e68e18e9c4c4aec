"""Train-step speed of every model family at its `small` config, on this machine.

    python benchmarks/families.py [--steps 5] [--only standard,lexinvariant,...]

For each family: tokens/s, step time, model FLOP/s and MFU (lexi/train/flops.py: 3 x the
forward matmul FLOPs, causal attention halved as MaxText counts). On a CPU the MFU
denominator is the best f32 matmul this process measures (1024^2 and 2048^2 squares), so
MFU there is "fraction of this CPU's matmul peak"; on a GPU or TPU it is the datasheet
peak for the compute dtype. The glyph family's frozen table is built as a run builds it.
ZeTT's step (hypernetwork + frozen base) is timed by benchmarks/zett_host.py.
"""
from __future__ import annotations

import argparse
import json
import os

import jax

from harness import bench_train_step, peak, vocab_of
from lexi.config import load_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
FAMILIES = {
    "standard": "standard.py:small",
    "lexinvariant": "lexinvariant.py:small",
    "regularized": "regularized.py:small",
    "glyph": "glyph.py:small",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--only", default=",".join(FAMILIES))
    args = p.parse_args()
    rows = []
    for name in args.only.split(","):
        cfg = load_config(os.path.join(CONFIGS, FAMILIES[name]))
        r = bench_train_step(cfg, vocab_of(cfg), steps=args.steps)
        pk, source = peak(cfg.model.dtype)
        r.update(family=name, config=FAMILIES[name], device=jax.devices()[0].device_kind, peak_gflops=pk / 1e9,
                 peak_source=source, mfu=r["model_tflops_per_sec"] * 1e12 / pk)
        rows.append(r)
        print(f"{name:13s} {FAMILIES[name]:22s} {r['tokens_per_sec']:8.0f} tokens/s  step {1e3 * r['step_s']:7.1f} ms  "
              f"{1e3 * r['model_tflops_per_sec']:6.1f} GFLOP/s model  MFU {100 * r['mfu']:5.1f}% "
              f"(peak {pk / 1e9:.1f} GFLOP/s, {source})", flush=True)
    std = next((r for r in rows if r["family"] == "standard"), None)
    lex = next((r for r in rows if r["family"] == "lexinvariant"), None)
    if std and lex:
        print(f"lexinvariant / standard step time: {lex['step_s'] / std['step_s']:.3f} (goal <= 1.15)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
