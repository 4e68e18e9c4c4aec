"""How long ZeTT training waits for its host-side tokenizer sampling.

    python benchmarks/zett_host.py [--base-workdir RUN] [--config configs/zett.py:small] [--steps 20]
                                   [--config.x=y ...]

Each step's batch (a freshly sampled tokenizer, its decomposition into base pieces, the text
encoded with it) is made by the training loop's background prefetcher while the device runs
the previous step. Printed: the host time per batch (made serially, warm window), the step
time, and the fraction of the timed steps' wall time spent waiting for a batch (goal: under
5%). Without --base-workdir a tiny SentencePiece base is trained first (about a minute).
On a CPU host the "device" and the sampler share the same cores, so the wait is an upper
bound of what a GPU or TPU host would see.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax

from lexi.config import load_config
from lexi.data.prefetch import Prefetcher
from lexi.train.loop import train
from lexi.tasks import task_for


def tiny_base(workdir: Path) -> Path:
    cfg = load_config("configs/standard.py:tiny", [
        "--config.data.tokenizer.kind=sentencepiece", "--config.data.tokenizer.vocab_size=400",
        "--config.train.steps=30", "--config.train.progress_bar=false"])
    train(cfg, workdir)
    return workdir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-workdir", default="")
    p.add_argument("--config", default="configs/zett.py:small")
    p.add_argument("--steps", type=int, default=20)
    args, overrides = p.parse_known_args()
    tmp = Path(tempfile.mkdtemp(prefix="lexi_zett_bench_"))
    base = Path(args.base_workdir) if args.base_workdir else tiny_base(tmp / "base")
    cfg = load_config(args.config, [f"--config.base_workdir={base}", *overrides])
    task = task_for(cfg)
    run = task.build_run(cfg, tmp / "zett")
    batches, val = task.data(cfg, run)
    host = []
    for s in range(3):  # serially, after a cold start (the window replay) at step 0
        t0 = time.perf_counter()
        batches.batch_at(s)
        host.append(time.perf_counter() - t0)
    step, _ = task.compile(run, val)
    state = task.init_state(run, cfg.seed)
    rng = jax.random.key(cfg.seed)
    waits, totals = [], []
    with Prefetcher(batches.batch_at, 0, depth=max(1, cfg.train.prefetch)) as prefetch:
        for i in range(args.steps + 1):
            t0 = time.perf_counter()
            local = prefetch.next()
            t1 = time.perf_counter()
            state, metrics = step(state, local, rng)
            jax.block_until_ready(metrics["loss"])
            if i:  # step 0 compiles
                waits.append(t1 - t0)
                totals.append(time.perf_counter() - t0)
    out = {"config": args.config, "vocab_size": cfg.zett.vocab_size, "batch": cfg.train.batch_size,
           "seq_len": cfg.data.seq_len, "base_d_model": task.zett.base.d_model, "steps": args.steps,
           "host_batch_s_warm": statistics.median(host[1:]), "host_batch_s_cold": host[0],
           "step_s": statistics.median(totals), "wait_fraction": sum(waits) / sum(totals),
           "device": jax.devices()[0].device_kind}
    print(f"{args.config}: host batch {1e3 * out['host_batch_s_warm']:.0f} ms warm "
          f"({1e3 * out['host_batch_s_cold']:.0f} ms cold), step {out['step_s']:.2f} s, "
          f"waiting for the host {100 * out['wait_fraction']:.1f}% of step time")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
