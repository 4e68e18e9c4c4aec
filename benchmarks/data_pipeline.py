"""The streaming input pipeline (config.data.input_pipeline=streaming) on generated jsonl.gz corpora.

Run: python benchmarks/data_pipeline.py [--docs 8000000] [--small-mb 100] [--steps 1000] [--dir /tmp]
                                        [--tfds-docs 100000] [--tokenizer-processes N]

Writes a large corpus (--docs documents of ~500 characters: 8M is ~4 GB of text) and a small
one (--small-mb of text), 64 and 8 .jsonl.gz files, under --dir, and deletes them at the end.
For each corpus and tokenizer (char; a 32k SentencePiece unigram model trained on 6 MB of the
small corpus, kept in the lexi cache) a fresh process pinned to ONE core builds the pipeline of
configs/lexinvariant.py:paper_char's shape (batch 64 x 512, the default streaming windows) and
reports: seconds to the first batch, peak resident memory above what the process held before
the pipeline was built, bytes it wrote to disk, and tokens/s over --steps further batches.
With --tfds-docs N (0 skips it), the small corpus' first N documents are also prepared as a
TFDS ArrayRecord dataset under --dir and read as a `tfds:` corpus (records by index under one
global shuffle, lexi/data/tfds_source.py), measured the same way. With --tokenizer-processes N,
char on the large corpus is measured once more with N worker processes tokenizing
(data.streaming_tokenizer_processes, lexi/data/stream_encode.py), on N + 1 cores.

The rate to beat, derived: paper_char costs F = 3 x forward matmul FLOPs (lexi/train/flops.py)
per token x 32,768 tokens ~ 3.1e13 FLOPs per step. A TPU v3-8 host drives 4 chips, 492 TFLOP/s
bf16 peak; at 45% MFU that is 0.45 x 492e12 / F ~ 7.2 steps/s ~ 230k tokens/s. Goals (issue 20):
first batch within 10 s for both corpora, peak memory within 0.5 GB of each other, nothing
proportional to the corpus written, char >= 10x the rate, 32k SentencePiece >= 1x.
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

V3_8_PEAK = 4 * 123e12  # bf16 FLOP/s of a TPU v3-8's 4 chips (8 cores)
MFU = 0.45


def reference_tokens_per_s() -> tuple[float, float]:
    """(tokens/s a v3-8 host consumes at 45% MFU on paper_char, FLOPs per step)."""
    from lexi.config import load_config
    from lexi.model.config import BackboneConfig
    from lexi.train import flops

    cfg = load_config(str(Path(__file__).parent.parent / "configs" / "lexinvariant.py") + ":paper_char")
    tokens = cfg.train.batch_size * cfg.data.seq_len
    per_step = flops.train_flops_per_token(BackboneConfig.from_dict(dict(cfg.model)), 128, cfg.data.seq_len) * tokens
    return MFU * V3_8_PEAK / per_step * tokens, per_step


# ---------------------------------------------------------------- corpus


def lexicon(rng, n=50_000) -> np.ndarray:
    """Pseudo-words of 1-4 syllables, so a 32k SentencePiece model has real pieces to learn."""
    syll = np.array([c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")])
    words = {"".join(rng.choice(syll, rng.integers(1, 5))) for _ in range(3 * n)}
    return np.array(sorted(words)[:n], dtype=object)


def write_corpus(root: Path, n_docs: int, n_files: int, seed: int) -> int:
    """n_docs documents of ~500 characters (Zipf-distributed words, sentences) over n_files .jsonl.gz; text bytes."""
    rng = np.random.default_rng(seed)
    words = lexicon(rng)
    p = 1.0 / (np.arange(len(words)) + 2.7) ** 1.07
    p /= p.sum()
    root.mkdir(parents=True, exist_ok=True)
    text_bytes = 0
    for f in range(n_files):
        n = n_docs // n_files + (f < n_docs % n_files)
        with gzip.open(root / f"shard-{f:05d}.jsonl.gz", "wb", compresslevel=1) as out:
            for lo in range(0, n, 20_000):
                k = min(20_000, n - lo)
                lengths = np.maximum(1, rng.lognormal(np.log(56), 0.6, k).astype(np.int64))
                picked = words[rng.choice(len(words), int(lengths.sum()), p=p)]
                ends = np.cumsum(lengths)
                lines = []
                for d, (a, b) in enumerate(zip(ends - lengths, ends)):
                    w = picked[a:b].tolist()
                    w[::13] = [x.capitalize() for x in w[::13]]
                    text = " ".join(w) + "."
                    text_bytes += len(text)
                    lines.append(json.dumps({"text": text, "id": lo + d}))
                out.write(("\n".join(lines) + "\n").encode())
    return text_bytes


# ---------------------------------------------------------------- one measurement (a child process)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def write_tfds(data_dir: Path, small: Path, n_docs: int) -> str:
    """A TFDS ArrayRecord dataset `lexi_bench_text` of the small corpus' first n_docs documents
    (train) and the next 2% (validation; fewer train documents if the corpus is short), prepared
    locally; returns the corpus name."""
    import warnings

    import tensorflow_datasets as tfds

    from lexi.data.text_files import TextFiles

    n_val = max(1, n_docs // 50)
    docs = list(itertools.islice(TextFiles(f"{small}/*.jsonl.gz", val_fraction=0.0).documents("train"), n_docs + n_val))
    if len(docs) < n_docs + n_val:  # a small corpus: its documents, a 2% share of them for validation
        n_val = max(1, len(docs) // 51)
        n_docs = len(docs) - n_val

    class LexiBenchText(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, n_docs),
                    "validation": self._generate_examples(n_docs, n_docs + n_val)}

        def _generate_examples(self, lo, hi):
            for i in range(lo, hi):
                yield i, {"text": docs[i]}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LexiBenchText(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return "tfds:lexi_bench_text"


def measure(files: str, tokenizer_spec: str, steps: int, processes: int = 0) -> dict:
    from lexi import tokenizers
    from lexi.config import load_config
    from lexi.data.corpora import get_corpus
    from lexi.data.streaming import StreamingBatches, StreamSettings

    cfg = load_config(str(Path(__file__).parent.parent / "configs" / "lexinvariant.py") + ":paper_char")
    # val_fraction stays 0.04, so every document is hashed into its split as in training
    if files.startswith("tfds:"):  # tfds:<name>@<data_dir>
        name, _, data_dir = files.partition("@")
        cfg.data.update(corpus=name, tfds_data_dir=data_dir, input_pipeline="streaming")
    else:
        cfg.data.update(corpus="text_files", files=files, input_pipeline="streaming")
    cfg.data.streaming_tokenizer_processes = processes
    tok = (tokenizers.load("char") if tokenizer_spec == "char"
           else tokenizers.from_config({"kind": "sentencepiece", "model_file": tokenizer_spec}, lambda: [], "."))
    rss0, written0 = _status("VmRSS"), _written()
    t0 = time.perf_counter()
    batches = StreamingBatches(get_corpus(cfg.data), tok, StreamSettings.from_config(cfg))
    batches.batch_at(0)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for s in range(1, steps + 1):
        batches.batch_at(s)
    rate = steps * batches.tokens_per_step / (time.perf_counter() - t1)
    batches.close()
    return {"first_batch_s": first, "tokens_per_s": rate, "peak_rss_growth_bytes": _status("VmHWM") - rss0,
            "written_bytes": _written() - written0, "tokens_per_step": batches.tokens_per_step}


def run_child(files: str, tokenizer_spec: str, steps: int, core: int, processes: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--measure", files, "--tokenizer", tokenizer_spec, "--steps", str(steps),
           "--core", str(core), "--tokenizer-processes", str(processes)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def sentencepiece_model(small: Path, cache: Path) -> str:
    """A 32k unigram model trained (once; cached in the lexi cache) on the first 6 MB of the small corpus."""
    from lexi.data.text_files import TextFiles
    from lexi.tokenizers.sentencepiece import train_sentencepiece

    docs = TextFiles(f"{small}/*.jsonl.gz", val_fraction=0.0).documents("train")
    return str(train_sentencepiece(docs, 32_000, cache, max_chars=6_000_000,
                                   key="benchmarks/data_pipeline.py corpus v1").model_file)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=8_000_000, help="documents of the large corpus")
    ap.add_argument("--small-mb", type=float, default=100, help="text of the small corpus, MB")
    ap.add_argument("--steps", type=int, default=1000,
                    help="batches timed after the first (several windows of 10,000 documents)")
    ap.add_argument("--dir", default="/tmp", help="where the corpora are written (and deleted)")
    ap.add_argument("--core", type=int, default=0, help="the one core the measuring processes are pinned to")
    ap.add_argument("--keep", action="store_true", help="keep the generated corpora")
    ap.add_argument("--tfds-docs", type=int, default=100_000,
                    help="documents of the small corpus also read as a tfds ArrayRecord dataset (0: skip)")
    ap.add_argument("--tokenizer-processes", type=int, default=0,
                    help="also measure char with N worker processes tokenizing (data.streaming_tokenizer_processes), "
                         "the measuring process and its workers pinned to cores --core ... --core + N")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        os.sched_setaffinity(0, set(range(args.core, args.core + 1 + args.tokenizer_processes)))
        print(json.dumps(measure(args.measure, args.tokenizer, args.steps, args.tokenizer_processes)))
        return

    ref, flops_step = reference_tokens_per_s()
    print(f"reference: paper_char {flops_step:.3g} FLOPs/step of 32,768 tokens; TPU v3-8 at {MFU:.0%} MFU of "
          f"{V3_8_PEAK / 1e12:.0f} TFLOP/s -> {ref / 1e3:.0f}k tokens/s")
    root = Path(args.dir) / f"lexi_data_pipeline_{os.getpid()}"
    corpora = {"large": (args.docs, 64), "small": (max(8, int(args.small_mb * 1e6 / 500)), 8)}
    rows, pooled = [], None
    try:
        for name, (n, files) in corpora.items():
            t = time.perf_counter()
            size = write_corpus(root / name, n, files, seed=len(name))
            gz = sum(p.stat().st_size for p in (root / name).iterdir())
            print(f"{name}: {n:,} documents, {size / 1e9:.2f} GB text, {gz / 1e9:.2f} GB gzip, {files} files "
                  f"(written in {time.perf_counter() - t:.0f} s)")
            corpora[name] = (n, files, size)
        spm = sentencepiece_model(root / "small", Path(os.environ.get("LEXI_CACHE", Path.home() / ".cache" / "lexi")))
        sources = {name: f"{root / name}/*.jsonl.gz" for name in corpora}
        if args.tfds_docs:
            t = time.perf_counter()
            sources["tfds"] = write_tfds(root / "tfds", root / "small", args.tfds_docs) + f"@{root / 'tfds'}"
            print(f"tfds: {args.tfds_docs:,} documents of the small corpus as ArrayRecord "
                  f"(prepared in {time.perf_counter() - t:.0f} s)")
            corpora["tfds"] = (args.tfds_docs, 0, corpora["small"][2] * args.tfds_docs / corpora["small"][0])
        for tok_name, spec in (("char", "char"), ("sentencepiece 32k", spm)):
            for name in corpora:
                r = run_child(sources[name], spec, args.steps, args.core)
                rows.append((tok_name, name, r))
                print(f"{tok_name:18s} {name:5s} ({corpora[name][2] / 1e9:5.2f} GB): first batch "
                      f"{r['first_batch_s']:5.2f} s, peak memory +{r['peak_rss_growth_bytes'] / 2**20:6.0f} MiB, "
                      f"written {r['written_bytes'] / 2**20:5.1f} MiB, {r['tokens_per_s'] / 1e3:8.0f}k tokens/s "
                      f"= {r['tokens_per_s'] / ref:5.2f}x the v3-8 reference ({ref / 1e3:.0f}k)")
        pooled = (run_child(f"{root / 'large'}/*.jsonl.gz", "char", args.steps, args.core, args.tokenizer_processes)
                  if args.tokenizer_processes else None)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    by = {(t, c): r for t, c, r in rows}
    if pooled:
        r = pooled
        print(f"char with {args.tokenizer_processes} tokenizer processes on {1 + args.tokenizer_processes} cores, large: "
              f"first batch {r['first_batch_s']:.2f} s, {r['tokens_per_s'] / 1e3:.0f}k tokens/s "
              f"({r['tokens_per_s'] / by[('char', 'large')]['tokens_per_s']:.2f}x one core in-thread)")
    corpora.pop("tfds", None)  # the goals compare the two jsonl corpora; tfds rows are printed above
    mem = max(abs(by[(t, "large")]["peak_rss_growth_bytes"] - by[(t, "small")]["peak_rss_growth_bytes"])
              for t in ("char", "sentencepiece 32k"))
    print(f"goals: first batch <= 10 s: {all(r['first_batch_s'] <= 10 for _, _, r in rows)}; "
          f"peak memory large - small <= 0.5 GB: {mem / 2**30:.3f} GB; "
          f"written <= 1 MiB: {all(r['written_bytes'] <= 2**20 for _, _, r in rows)}; "
          f"char >= 10x: {min(by[('char', c)]['tokens_per_s'] for c in corpora) / ref:.2f}x; "
          f"sentencepiece >= 1x: {min(by[('sentencepiece 32k', c)]['tokens_per_s'] for c in corpora) / ref:.2f}x")


if __name__ == "__main__":
    main()
