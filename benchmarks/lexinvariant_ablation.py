"""The lexinvariant levers one at a time, at a fixed token budget (issue 17's study).

Every row is `configs/lexinvariant.py:medium` (4 layers, width 128, context 256, batch 32,
lr 1e-2 cosine, KJV characters) cut to the same number of steps, with one change against
the row it names as its parent. Train a row, then score it:

  python benchmarks/lexinvariant_ablation.py train ROW --root runs/ablation   # one run, ~25 min on one core
  python benchmarks/lexinvariant_ablation.py table --root runs/ablation       # eval every trained row, print the table

Two rows at a time, one per core: `taskset -c 0 python ... train paper & taskset -c 1 python ... train signs`.
The table (loss vs position beside the in-context counters, induction gain, probe-free
figures) and the measured results are in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

STEPS = 500  # 500 x 32 x 256 = 4.1M characters per row

# name -> (parent, overrides on top of the parent's, what the change is)
ROWS: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "paper": (None, (), "the paper's choices: scale starts at ones, one T5 bias table, 4 heads x 32"),
    "signs": ("paper", ("--config.embedding.init_scale=signs",), "initial scale: random +-1 signs"),
    "constant_scale": ("paper", ("--config.embedding.init_scale=constant", "--config.embedding.init_scale_value=0.1"),
                       "initial scale: a constant 0.1 (echo p = 0.013 instead of 0.62)"),
    "per_layer_bias": ("signs", ("--config.model.relpos_per_layer=true",), "a T5 bias table per layer"),
    "head_dim_64": ("per_layer_bias", ("--config.model.head_dim=64",), "4 heads x 64 (attention width 256)"),
    "compact_vocab": ("per_layer_bias", ("--config.data.tokenizer.kind=corpus_chars",),
                      "characters of the train split only (69 ids instead of 128)"),
    "constant_lr": ("compact_vocab", ("--config.train.schedule=constant",),
                    "constant learning rate after warmup (no cosine decay)"),
    "mixture": ("compact_vocab", ("--config.data.corpus=mixture", "--config.data.mixture=kjv:0.8,python_code:0.2"),
                "train on KJV 0.8 + Python code 0.2 by characters (scored on KJV, like every row)"),
    "repeats": ("compact_vocab", ("--config.data.repeat_share=0.5", "--config.data.repeat_length=64"),
                "half the training windows carry one span (16-64 chars) of their text copied further on"),
    "long_context": ("compact_vocab", ("--config.data.seq_len=512", "--config.train.batch_size=16"),
                     "context 512 at batch 16 (same characters per step)"),
}


def overrides(row: str) -> list[str]:
    parent, own, _ = ROWS[row]
    return (overrides(parent) if parent else []) + list(own)


def train(row: str, root: Path) -> None:
    cmd = ["lexi", "train", "--config", "configs/lexinvariant.py:medium", "--workdir", str(root / row),
           f"--config.train.steps={STEPS}", "--config.train.warmup_steps=50", "--config.train.eval_every=250",
           "--config.train.checkpoint_every=250", "--config.train.progress_bar=false", *overrides(row)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


EVAL_FLAGS = ("--sequences", "100", "--examples", "200", "--reasoning-offset", "128", "--induction-length", "64")


def _finished(run: Path) -> bool:
    """Trained for all STEPS (rows still training are left out of the table)."""
    metrics = run / "metrics.jsonl"
    return metrics.is_file() and any(json.loads(line).get("step") == STEPS and "val_loss" in line
                                     for line in metrics.read_text().splitlines() if line.strip())


def _eighths(curve) -> tuple[float, float]:
    k = len(curve) // 8
    return sum(curve[:k]) / k, sum(curve[-k:]) / k


def table(root: Path, cipher_rows: list[str], probe_steps: int) -> None:
    """Evaluate every trained row not evaluated yet on KJV's validation split (`lexi eval --corpus kjv`,
    EVAL_FLAGS; the cipher suite too for `cipher_rows`), then print the table with the in-context
    counters on the same windows, through each run's own tokenizer."""
    sys.path.insert(0, str(Path(__file__).parent))
    from in_context_baselines import eval_windows_for, summary

    from lexi import tokenizers

    rows = [r for r in ROWS if _finished(root / r)]
    for r in rows:
        res = root / r / "eval" / "results.json"
        suites = "perplexity,reasoning" + (",cipher" if r in cipher_rows else "")
        if not res.is_file() or (r in cipher_rows and "cipher" not in json.loads(res.read_text())):
            subprocess.run(["lexi", "eval", "--workdir", str(root / r), "--suite", suites, *EVAL_FLAGS,
                            "--corpus", "kjv", "--probe-steps", str(probe_steps)], check=True)
    counters = {}
    print("| row | change | loss first 1/8 | last 1/8 | unigram / bigram counter, last 1/8 | "
          "induction: 2nd copy (1st) | LookUp-4 top-1 (chance) | LookUp-16 top-1 (chance) | key precision, "
          "assignment / vote (frequency baseline) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        res = json.loads((root / r / "eval" / "results.json").read_text())
        tok = tokenizers.load(str(root / r))  # the run's own ids, so the counters see its vocabulary
        seq_len = json.loads((root / r / "config.json").read_text())["data"]["seq_len"]
        if (tok.fingerprint(), seq_len) not in counters:
            counters[tok.fingerprint(), seq_len] = summary(*eval_windows_for(tok, seq_len, 100), d=128)
        first, last = _eighths(res["perplexity"]["loss_by_position_raw"])
        c = counters[tok.fingerprint(), seq_len]
        rs = res["reasoning"]
        ind = rs["induction"]
        top1 = lambda key: "{top1_among_candidates:.3f} ({top1_chance:.3f})".format(**rs["detail"][key]["uniform"])
        key = "not run"
        if "cipher" in res:
            kp, fb = res["cipher"]["key_precision"], res["cipher"]["frequency_baseline"]
            key = (f"{kp['assignment']['last_window']:.3f} / {kp['vote']['last_window']:.3f} "
                   f"({fb['assignment']['last_window']:.3f} / {fb['vote']['last_window']:.3f})")
        print(f"| {r} | {ROWS[r][2]} | {first:.3f} | {last:.3f} | {c['unigram']['last']:.3f} / "
              f"{c['bigram']['last']:.3f} | {ind['second_copy_loss']:.3f} ({ind['first_copy_loss']:.3f}) | "
              f"{top1('lookup')} | {top1('lookup_16')} | {key} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("row", choices=sorted(ROWS))
    t.add_argument("--root", type=Path, default=Path("runs/ablation"))
    s = sub.add_parser("table")
    s.add_argument("--root", type=Path, default=Path("runs/ablation"))
    s.add_argument("--cipher", default="", help="comma-separated rows to run the (slower) cipher suite on too")
    s.add_argument("--probe-steps", type=int, default=2000)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        train(args.row, args.root)
    else:
        table(args.root, [r for r in args.cipher.split(",") if r], args.probe_steps)


if __name__ == "__main__":
    main(sys.argv[1:])
