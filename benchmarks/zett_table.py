"""The README's ZeTT table: one base moved to four target tokenizers by every method lexi has.

    python benchmarks/zett_table.py --zett-workdir runs/zett --out runs/zett_table \\
        [--zett-workdir runs/zett_share0 ...] [--targets bpe2000,py_unigram4000,hf_bpe4000,byte]
        [--donor-steps 300] [--max-documents 0]
    python benchmarks/zett_table.py --smoke --out /tmp/zt     # the tests' tiny base, 4 documents

Targets (made under OUT/targets unless present; none of them is the base's own tokenizer):
  bpe2000         SentencePiece BPE, 2,000 pieces, trained on KJV's train split
                  (`lexi tokenizer --corpus kjv --vocab-size 2000 --model-type bpe`)
  py_unigram4000  SentencePiece unigram, 4,000 pieces, trained on Python code
  hf_bpe4000      a Hugging Face byte-level BPE (GPT-2's pre-tokenizer), 4,000 ids, trained with the
                  `tokenizers` library on Python code and loaded from its own tokenizer.json
  byte            the 256 bytes

Donors (OMP needs one; TokenAdapt then measures similarity in its space): for each target a
small LM trained from scratch on KJV's train split with that tokenizer, the same budget for
all: configs/standard.py:small's block (width 256, 4 heads, MLP 1024) with 2 layers, context
128, batch 16, `--donor-steps` steps (300: 614k tokens). Width 256 as the base's, so that
OMP's k = 64 anchors are fewer than the donor's dimensions, as they are for the paper's donors.
Made under OUT/donors unless present.

Every cell is `lexi zett eval --workdir Z --tokenizer T --donor D` (lexi/zett/evaluate.py:
run_zett_eval, the same function): bits per byte of the base's corpus' validation split, and
the seconds each method took to make its rows. With several --zett-workdir (e.g. byte-like
share 0.1 and 0), each adds a hypernet column; the baselines come from the first (they read
only the base, which the runs must share). Writes OUT/zett_table.json and prints the table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from zett_transfer_train import write_report  # this directory is on sys.path

TARGETS = ("bpe2000", "py_unigram4000", "hf_bpe4000", "byte")
DONOR_STEPS = 300
SMOKE_DOCUMENTS = 4


def make_target(name: str, out: Path, smoke: bool = False) -> str:
    """The tokenizer spec `lexi zett eval --tokenizer` takes for `name`, made if missing."""
    from lexi.cli import main as lexi

    if name == "byte":
        return "byte"
    path = out / name
    if name == "hf_bpe4000":
        path = path / "tokenizer.json"
        if not path.is_file():
            make_hf_bpe(path, vocab_size=400 if smoke else 4000, smoke=smoke)
        return str(path)
    if (path / "tokenizer.json").is_file():
        return str(path)
    spec = {"bpe2000": ("kjv", 2000, "bpe"), "py_unigram4000": ("python_code", 4000, "unigram")}
    if name not in spec:
        raise SystemExit(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    corpus, size, model_type = spec[name]
    if smoke:  # the least each corpus allows: its characters plus 260 byte and special pieces
        size = {"kjv": 400, "python_code": 600}[corpus]
    if lexi(["tokenizer", "--corpus", corpus, "--vocab-size", str(size), "--model-type", model_type,
             "--out", str(path)]) != 0:
        raise SystemExit(f"could not make target {name}")
    return str(path)


def make_hf_bpe(path: Path, vocab_size: int, smoke: bool = False) -> None:
    """A GPT-2-style byte-level BPE trained on the Python standard library's train split."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from lexi.data.corpora import get_corpus

    docs = get_corpus({"corpus": "python_code", "max_documents": 40 if smoke else 0}).documents("train")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(docs, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def donor_overrides(spec: str, steps: int, smoke: bool) -> list[str]:
    """`lexi train` flags of a donor for target `spec` (see the module docstring for the budget)."""
    from lexi import tokenizers

    kind = tokenizers.load(spec).name  # sentencepiece | hf | byte
    flags = [f"--config.data.tokenizer.kind={kind}"]
    if kind == "sentencepiece":
        flags.append(f"--config.data.tokenizer.model_file={Path(spec) / 'sentencepiece.model'}")
    elif kind == "hf":
        flags.append(f"--config.data.tokenizer.model_file={spec}")
    width = 32 if smoke else 256
    return flags + [f"--config.model.d_model={width}", f"--config.model.head_dim={width // 4}",
                    f"--config.model.mlp_dim={4 * width}", "--config.model.num_layers=2",
                    "--config.data.seq_len=128", "--config.train.batch_size=16", f"--config.train.steps={steps}",
                    f"--config.train.warmup_steps={max(steps // 10, 1)}", "--config.train.eval_every=0",
                    f"--config.train.checkpoint_every={steps}", "--config.train.progress_bar=false"]


def make_donor(spec: str, workdir: Path, steps: int, smoke: bool) -> tuple[Path, float]:
    """A donor run for target `spec` (reused when its checkpoint exists): (run directory, seconds)."""
    from lexi.config import load_config
    from lexi.train.loop import train

    if (workdir / "checkpoints").exists():
        return workdir, 0.0
    t0 = time.perf_counter()
    train(load_config("configs/standard.py:small", donor_overrides(spec, steps, smoke)), workdir)
    return workdir, time.perf_counter() - t0


def measure(args) -> dict:
    from lexi.zett.evaluate import run_zett_eval

    out = Path(args.out)
    report = {"zett_workdirs": [str(Path(z).resolve()) for z in args.zett_workdir], "donor_steps": args.donor_steps,
              "targets": {}}
    for name in args.targets:
        spec = make_target(name, out / "targets", args.smoke)
        donor, donor_seconds = make_donor(spec, out / "donors" / name, args.donor_steps, args.smoke)
        row = {"tokenizer": spec, "donor": str(donor), "donor_train_seconds": donor_seconds, "hypernet": {}}
        for i, z in enumerate(args.zett_workdir):
            r, _ = run_zett_eval(z, spec, max_documents=args.max_documents, donor=donor if i == 0 else None)
            row["hypernet"][z] = r["bits_per_byte"]["hypernet"]
            if i == 0:
                row.update(bits_per_byte=r["bits_per_byte"], tokens_per_byte=r["tokens_per_byte"],
                           seconds_to_make_rows=r["seconds_to_make_rows"], bytes=r["bytes"],
                           documents=r["documents"], target_vocab_size=r["target_vocab_size"])
        report["targets"][name] = row
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row["bits_per_byte"].items()), file=sys.stderr)
    return report


METHODS = ("hypernet", "fvt", "omp", "tokenadapt", "lexical", "random")


def table(report: dict) -> str:
    zetts = report["zett_workdirs"]
    head = ["target (ids, tokens/byte)", "original"] + [
        "hypernet" if i == 0 else f"hypernet ({Path(z).name})" for i, z in enumerate(zetts)] + list(METHODS[1:])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, row in report["targets"].items():
        bpb = row["bits_per_byte"]
        hyper = [row["hypernet"][z] for z in row["hypernet"]]
        values = hyper + [bpb.get(m) for m in METHODS[1:]]
        best = min(v for v in values if v is not None)
        cells = [f"{name} ({row['target_vocab_size']}, {row['tokens_per_byte']['target']:.3f})",
                 f"{bpb['original']:.3f}"]
        cells += ["-" if v is None else (f"**{v:.3f}**" if v == best else f"{v:.3f}") for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("seconds to make the rows: " + "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row["seconds_to_make_rows"].items())
        for name, row in report["targets"].items()))
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zett-workdir", action="append", default=[], help="a ZeTT run; repeat for more hypernet columns")
    p.add_argument("--out", required=True, help="targets, donors and zett_table.json go here")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--donor-steps", type=int, default=DONOR_STEPS)
    p.add_argument("--max-documents", type=int, default=0, help="0 = the whole validation split")
    p.add_argument("--smoke", action="store_true", help="the tests' tiny base and hypernetwork "
                   "(benchmarks/zett_transfer_train.py --smoke's), small targets, 10-step donors, 4 documents")
    args = p.parse_args(argv)
    args.targets = tuple(t for t in args.targets.split(",") if t)
    if args.smoke:
        from zett_transfer_train import smoke_zett_run  # this directory is on sys.path

        args.zett_workdir = args.zett_workdir or [str(smoke_zett_run(Path(args.out) / "setup"))]
        args.donor_steps = 10 if args.donor_steps == DONOR_STEPS else args.donor_steps
        args.max_documents = args.max_documents or SMOKE_DOCUMENTS
    if not args.zett_workdir:
        p.error("--zett-workdir is required (or --smoke)")
    report = measure(args)
    write_report(report, table(report), Path(args.out) / "zett_table.json")
    return report


if __name__ == "__main__":
    main()
