"""Host-side batch preparation: how long `Batches.batch_at` takes for one step.

Run: python benchmarks/batches.py [--tokens 5000000] [--seq-len 512] [--batch 64] [--steps 20]
Prints the median and slowest wall-clock milliseconds of `batch_at` over a random token
stream held in memory and the same stream memory-mapped from a .npy file (as training reads
a cached corpus), after one warm-up call each. A step on this CPU takes far longer, so the
prefetcher hides batch preparation as long as it stays in the low milliseconds.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lexi.data.pipeline import Batches

BOS = 2


def time_batches(tokens: np.ndarray, seq_len: int, batch: int, steps: int) -> list[float]:
    b = Batches(tokens, seq_len, batch, seed=0, bos_id=BOS, pad_id=0)
    b.batch_at(0)
    times = []
    for s in range(1, steps + 1):
        t0 = time.perf_counter()
        b.batch_at(s)
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=5_000_000)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    tokens = np.random.default_rng(0).integers(32, 127, args.tokens).astype(np.int32)
    tokens[::37] = BOS
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "stream.npy"
        np.save(path, tokens)
        for name, stream in [("in memory", tokens), ("memory-mapped", np.load(path, mmap_mode="r"))]:
            times = time_batches(stream, args.seq_len, args.batch, args.steps)
            print(f"batch_at, {args.batch} x {args.seq_len} from {args.tokens / 1e6:.1f}M tokens ({name}): "
                  f"median {1e3 * np.median(times):.2f} ms, slowest {1e3 * max(times):.2f} ms")


if __name__ == "__main__":
    main()
