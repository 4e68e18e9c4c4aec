"""Transfer, then train (ZeTT's n-shot recipe): bits/byte of a moved model after N steps of training.

    python benchmarks/zett_transfer_train.py --zett-workdir runs/zett --tokenizer byte --out runs/tt_byte \\
        [--rows hypernet,fvt] [--steps 0,100,300,1000] [--lr 2e-4] [--warmup 50] [--schedule cosine]
        [--schedule-steps S]
        [--batch-size B] [--trainable REGEX] [--max-documents 0] [--text-file F] [--json PATH]
    python benchmarks/zett_transfer_train.py --smoke --out /tmp/tt    # the tests' tiny setup, about a minute

For each kind of rows, the ZeTT run's base is moved to the target tokenizer exactly as
`lexi zett transfer --rows R --out-workdir OUT/R` does, and that run directory is trained
by the shared loop exactly as `lexi train --config OUT/R/config.json --workdir OUT/R` does,
stopping after each N (train(..., stop_at=N): one schedule that ends at the largest N, each
stage resuming from the previous one's checkpoint, nothing restarted). After each N the run's
newest checkpoint is scored with the same documents and code as `lexi zett eval`
(lexi/zett/evaluate.py: evaluation_documents, run_bits_per_byte); "original" is the base on
its own tokenizer. At N = 0 the hypernet and fvt figures are `lexi zett eval`'s (tested).

Learning rate. A moved run's config.json is its base's (lexi/zett/transfer.py, write_run),
so a plain `lexi train --config M/config.json --workdir M` repeats the base's whole recipe
from step 0: linear warmup over the base's warmup_steps to its peak lr (small_sp: 50 steps
to 2e-3), cosine to its train.steps, fresh AdamW moments, every parameter trained. The
flags here set the continued run's lr, warmup, schedule end and batch size instead
(defaults: the base's lr and schedule, warmup 10% of the largest N, ending at the largest
N); the printout and JSON record what was used. Why a warmup: fresh AdamW moments make the
first steps move every weight by about lr whatever its gradient, which can overwrite good
transferred rows. On the tiny case it did not show: bits/byte after 10 steps (smoke setup,
4 documents; tiny base lr 3e-3, cosine to step 10 unless said)

    target (N=0: hypernet / fvt)     lr 3e-3 w0   3e-3 w10   3e-4 w0   3e-4 w10   1e-4 w0   `lexi train` today*
    byte (8.249 / 8.411)             6.816/6.826  7.065/7.077 8.040/8.179 8.087/8.231 8.178/8.332  7.756/7.857
    base's own (4.580 / 4.536)       4.380/4.364  4.421/4.396 4.545/4.516    -          -          4.503/4.487

(* lr 3e-3, warmup 30, cosine to 300: the base's recipe). The tiny base is 30 steps from
random, so any training helps it and its transferred rows are poor. On the small base (README,
"Transfer, then train"; lr 2e-3, cosine to 1000, batch 8) the warmup does protect good rows:
without it the 600-step hypernetwork's BPE-2000 rows (an earlier base) go from 1.921 to 1.941
bits/byte in the first 10 steps, with 100 warmup steps to 1.887; FVT's rows lose nothing
either way.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROWS = ("hypernet", "fvt")
STEPS = (0, 100, 300, 1000)
SMOKE_STEPS = (0, 4, 10)
SMOKE_DOCUMENTS = 4


def parse_ints(text: str) -> tuple[int, ...]:
    steps = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    if not steps or steps[0] < 0:
        raise SystemExit(f"--steps takes non-negative step counts, e.g. 0,100,300; got {text!r}")
    return steps


def smoke_zett_run(out: Path) -> Path:
    """The tests' tiny setup (tests/test_zett.py): a 30-step standard base over a 400-piece
    SentencePiece model, and a 20-step configs/zett.py:tiny hypernetwork for it. Reused if present."""
    from lexi.config import load_config
    from lexi.train.loop import train

    base, zett = out / "base", out / "zett"
    if not (base / "checkpoints").exists():
        train(load_config("configs/standard.py:tiny", [
            "--config.data.tokenizer.kind=sentencepiece", "--config.data.tokenizer.vocab_size=400",
            "--config.model.d_model=32", "--config.model.head_dim=8", "--config.train.steps=30",
            "--config.data.seq_len=64", "--config.train.progress_bar=false"]), base)
    if not (zett / "checkpoints").exists():
        train(load_config("configs/zett.py:tiny", [f"--config.base_workdir={base}",
                                                   "--config.train.progress_bar=false"]), zett)
    return zett


def continued_config(moved: Path, args, last_step: int):
    """The moved run's own config.json with the continued-training flags applied."""
    from lexi.config import load_config

    cfg = load_config(str(moved / "config.json"), [])
    t = cfg.train
    t.lr = args.lr if args.lr is not None else t.lr
    t.warmup_steps = args.warmup if args.warmup is not None else last_step // 10
    t.schedule = args.schedule or t.schedule
    if args.batch_size:
        t.batch_size = args.batch_size
    t.trainable = args.trainable
    end = max(args.schedule_steps or last_step, last_step, 1)  # where the schedule ends
    t.update(steps=end, eval_every=0, checkpoint_every=end, log_every=end, progress_bar=False)
    return cfg


def measure(args) -> dict:
    from lexi.train.loop import train
    from lexi.zett.evaluate import evaluation_documents, run_bits_per_byte
    from lexi.zett.transfer import load_trained, transfer

    zett = Path(args.zett_workdir)
    out = Path(args.out)
    trained = load_trained(zett)
    seq_len = int(trained.cfg.data.seq_len)
    docs = evaluation_documents(trained.cfg.data, args.text_file, args.max_documents)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    original, n_base = run_bits_per_byte(trained.base.workdir, docs, seq_len=seq_len)
    report = {"zett_workdir": str(zett.resolve()), "tokenizer": args.tokenizer, "steps": list(args.steps),
              "bytes": n_bytes, "documents": len(docs), "seq_len": seq_len,
              "bits_per_byte": {"original": {str(n): original for n in args.steps}},
              "tokens_per_byte": {"original": n_base / n_bytes}, "continued": {}, "seconds": {}}
    last = args.steps[-1]
    for rows in args.rows:
        t0 = time.perf_counter()
        moved = out / rows  # transfer refuses a directory that already holds a run
        transfer(zett, args.tokenizer, moved, rows=rows, seed=args.seed)
        cfg = continued_config(moved, args, last)
        t = cfg.train
        report["continued"][rows] = {"lr": t.lr, "warmup_steps": t.warmup_steps, "schedule": t.schedule,
                                     "batch_size": t.batch_size, "seq_len": cfg.data.seq_len,
                                     "schedule_steps": t.steps, "trainable": t.trainable or "all"}
        curve = {}
        for n in args.steps:
            if n > 0:
                train(cfg, moved, stop_at=n)
            bpb, n_target = run_bits_per_byte(moved, docs, seq_len=seq_len)
            curve[str(n)] = bpb
        report["bits_per_byte"][rows] = curve
        report["tokens_per_byte"][rows] = n_target / n_bytes
        report["seconds"][rows] = time.perf_counter() - t0
    return report


def table(report: dict) -> str:
    steps = [str(n) for n in report["steps"]]
    lines = [f"target {report['tokenizer']}: bits/byte after N steps of continued training "
             f"({report['documents']} documents, {report['bytes']} bytes)",
             "| rows | " + " | ".join(f"N={n}" for n in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for rows, curve in report["bits_per_byte"].items():
        lines.append(f"| {rows} | " + " | ".join(f"{curve[n]:.4f}" for n in steps) + " |")
    for rows, c in report["continued"].items():
        lines.append(f"{rows}: lr {c['lr']:g}, warmup {c['warmup_steps']}, {c['schedule']} to step "
                     f"{c['schedule_steps']}, batch {c['batch_size']} x {c['seq_len']}, training {c['trainable']}")
    return "\n".join(lines)


def parse_table(text: str) -> dict[str, dict[int, float]]:
    """{rows: {N: bits/byte}} from `table`'s markdown (what tests/test_zett_transfer_train.py reads)."""
    lines = [l for l in text.splitlines() if l.startswith("| ")]
    steps = [int(c.strip()[2:]) for c in lines[0].strip("|").split("|")[1:]]
    out = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = dict(zip(steps, map(float, cells[1:])))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zett-workdir", default="")
    p.add_argument("--tokenizer", default="", help="the target, as `lexi zett transfer --tokenizer` takes it")
    p.add_argument("--out", required=True, help="directory for the moved runs (OUT/hypernet, OUT/fvt)")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="N values, ascending; each continues the last")
    p.add_argument("--lr", type=float, default=None, help="peak lr of continued training (default: the base's)")
    p.add_argument("--warmup", type=int, default=None, help="linear warmup steps (default: 10%% of the largest N)")
    p.add_argument("--schedule", default="", help="cosine | linear | constant (default: the base's)")
    p.add_argument("--schedule-steps", type=int, default=0, help="where the schedule ends (default: the largest N; "
                   "the base's train.steps with --lr/--warmup set to the base's reproduces plain `lexi train`)")
    p.add_argument("--batch-size", type=int, default=0, help="default: the base's")
    p.add_argument("--trainable", default="", help="regex over parameter paths: only these train "
                   "(config.train.trainable; '^embedding/' = the rows alone, the body frozen); default: all")
    p.add_argument("--max-documents", type=int, default=0)
    p.add_argument("--text-file", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="default: OUT/transfer_train.json")
    p.add_argument("--smoke", action="store_true", help="the tests' tiny base and hypernetwork, byte target, "
                   f"N in {','.join(map(str, SMOKE_STEPS))}, {SMOKE_DOCUMENTS} documents")
    args = p.parse_args(argv)
    args.rows = tuple(r for r in args.rows.split(",") if r)
    args.steps = parse_ints(args.steps)
    out = Path(args.out)
    if args.smoke:
        args.zett_workdir = args.zett_workdir or str(smoke_zett_run(out / "setup"))
        args.tokenizer = args.tokenizer or "byte"
        if args.steps == STEPS:
            args.steps = SMOKE_STEPS
        args.max_documents = args.max_documents or SMOKE_DOCUMENTS
    if not args.zett_workdir or not args.tokenizer:
        p.error("--zett-workdir and --tokenizer are required (or --smoke)")
    report = measure(args)
    write_report(report, table(report), Path(args.json) if args.json else out / "transfer_train.json")
    return report


def write_report(report: dict, text: str, path: Path) -> None:
    """Print the table and write the report's JSON (this benchmark's and zett_table.py's)."""
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
