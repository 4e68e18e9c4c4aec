"""Cost of lexinvariance: step time and peak memory of a lexinvariant LM vs the standard LM
of the same shape, at a character-level shape and a 32k-vocabulary shape.

    python benchmarks/lexinvariant_overhead.py [--shape char|32k|both] [--generator hash|threefry]

Goals (issue 3): step time ratio <= 1.15 and peak memory ratio <= 1.25 at both shapes.
Peak memory is the compiled step's own accounting (arguments + outputs + temporaries -
donated aliases), so it needs no allocator instrumentation and is the same on any host.
"""
from __future__ import annotations

import argparse
import json

from harness import bench_train_step
from lexi.config import base_config

SHAPES = {
    # the paper's character setting, scaled to this CPU: V=128, context 512
    "char": dict(vocab=128, d_model=256, layers=4, heads=4, mlp=1024, seq_len=512, batch=8, chunk=0),
    # the paper's 32k setting scaled down: full 32k vocabulary, width 256, context 512
    "32k": dict(vocab=32_128, d_model=256, layers=4, heads=4, mlp=1024, seq_len=512, batch=8, chunk=2048),
}


def config_for(shape: dict, kind: str, generator: str, chunk: int | None = None):
    c = base_config()
    c.model.update(num_layers=shape["layers"], d_model=shape["d_model"], num_heads=shape["heads"],
                   head_dim=shape["d_model"] // shape["heads"], mlp_dim=shape["mlp"], position="t5_bias")
    c.data.seq_len = shape["seq_len"]
    c.train.update(batch_size=shape["batch"], steps=1000)
    chunk = shape["chunk"] if chunk is None else chunk
    if kind == "lexinvariant":
        c.embedding = {"kind": "lexinvariant", "generator": generator, "readout_chunk": chunk,
                       "learn_temperature": True}
    else:
        c.embedding = {"kind": "trainable", "tied": True, "readout_chunk": chunk}
    return c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="both", choices=["char", "32k", "both"])
    p.add_argument("--generator", default="hash", choices=["hash", "threefry"])
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    for name in (["char", "32k"] if args.shape == "both" else [args.shape]):
        shape = SHAPES[name]
        # The standard LM is measured with both readouts (direct logits, and chunked when the
        # shape chunks); the ratios use its faster time and its smaller memory, the strictest
        # comparison for the lexinvariant model.
        stds = [bench_train_step(config_for(shape, "trainable", args.generator, c), shape["vocab"], steps=args.steps)
                for c in sorted({0, shape["chunk"]})]
        std = {"step_s": min(r["step_s"] for r in stds), "peak_bytes": min(r["peak_bytes"] for r in stds)}
        lex = bench_train_step(config_for(shape, "lexinvariant", args.generator), shape["vocab"], steps=args.steps)
        row = {"shape": name, **{k: shape[k] for k in ("vocab", "d_model", "layers", "seq_len", "batch", "chunk")},
               "generator": args.generator,
               "standard_step_s": std["step_s"], "lexinvariant_step_s": lex["step_s"],
               "time_ratio": lex["step_s"] / std["step_s"],
               "standard_peak_bytes": std.get("peak_bytes"), "lexinvariant_peak_bytes": lex.get("peak_bytes"),
               "memory_ratio": lex["peak_bytes"] / std["peak_bytes"] if std.get("peak_bytes") else None}
        print(f"{name:5s} V={shape['vocab']:6d}: step {1e3 * std['step_s']:.0f} ms standard, "
              f"{1e3 * lex['step_s']:.0f} ms lexinvariant -> time ratio {row['time_ratio']:.3f} (goal <= 1.15); "
              f"peak memory {std['peak_bytes'] / 2**20:.0f} MiB vs {lex['peak_bytes'] / 2**20:.0f} MiB -> "
              f"ratio {row['memory_ratio']:.3f} (goal <= 1.25)")
        print(json.dumps(row))


if __name__ == "__main__":
    main()
