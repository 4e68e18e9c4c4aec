"""What each `lexi` subcommand does, given its parsed arguments and the --config.* overrides
(lexi/cli.py builds the parser and runs one). Each returns the process exit status."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

def train(args, overrides) -> int:
    from lexi import config as config_lib
    from lexi.train.loop import train

    cfg = config_lib.load_config(args.config, overrides)
    last = train(cfg, Path(args.workdir))
    if last:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items()))
    return 0


def sample(args, overrides) -> int:
    from lexi.inference import load_for_inference, sample_text

    if overrides:
        raise_unexpected(overrides)
    loaded = load_for_inference(Path(args.workdir))
    for text in sample_text(loaded, args.prompt, max_new=args.max_new, temperature=args.temperature,
                            top_k=args.top_k, seed=args.seed, num_samples=args.num_samples):
        print(args.prompt + text)
        print("-" * 40)
    return 0


def evaluate(args, overrides) -> int:
    from lexi.eval.report import markdown_table
    from lexi.eval.suite import run_suite

    if overrides:
        raise_unexpected(overrides)
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    res = run_suite(Path(args.workdir), suites, text_file=args.text_file, corpus=args.corpus, examples=args.examples,
                    seed=args.seed,
                    num_sequences=args.sequences, probe_steps=args.probe_steps, probe_pool=args.probe_pool,
                    mc_file=args.mc_file, reasoning_offset=args.reasoning_offset,
                    lookup_pairs=_int_list(args.lookup_pairs, "--lookup-pairs"), induction_length=args.induction_length,
                    task_params={"permutation": {"num_items": args.permutation_items,
                                                 "num_demos": args.permutation_demos}})
    _print_report(markdown_table({Path(args.workdir).name: res}), res["_paths"])
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    from lexi.errors import UserError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"{flag} takes comma-separated positive integers, e.g. 4,16; got {text!r}")
    return values


def compare(args, overrides) -> int:
    from lexi.eval.suite import compare

    if overrides:
        raise_unexpected(overrides)
    out = compare([Path(r) for r in args.runs], Path(args.out))
    _print_report(out["table"], out["paths"])
    return 0


def demo(args, overrides) -> int:
    from lexi.demo import run_demo

    if overrides:
        raise_unexpected(overrides)
    out = run_demo(Path(args.workdir), steps=args.steps, probe_steps=args.probe_steps, examples=args.examples,
                   smoke=args.smoke)
    _print_report(out["table"], out["paths"])
    print("Longer runs and their measured results: README.md, section 'Results'.")
    return 0


def glyphs(args, overrides) -> int:
    from lexi import tokenizers
    from lexi.errors import UserError
    from lexi.glyph import glyph_table_with_stats, npz

    if overrides:
        raise_unexpected(overrides)
    out = Path(args.out).expanduser()
    if out.suffix != ".npz":
        raise UserError(f"--out {args.out} must be a .npz file name")
    if not out.parent.is_dir():
        raise UserError(f"--out {args.out}: directory {out.parent} does not exist")
    tok = tokenizers.load(args.tokenizer)
    table, stats = glyph_table_with_stats(tok, args.cell_px, args.cache_dir)
    npz.write(out, table, tok)
    print(f"tokenizer: {args.tokenizer} ({stats['tokenizer']}, vocab {stats['vocab_size']})")
    print(f"table: {stats['vocab_size']} x {stats['dim']} float32 (cell {stats['cell_px']} px)")
    print(f"duplicate rows: {stats['duplicates']} ({stats['raw_duplicates']} pictures coincided before "
          f"variant marks; {stats['marked']} rows marked)")
    print("coverage: " + ", ".join(f"{k} {v}" for k, v in stats["coverage"].items()))
    print(f"blank glyphs drawn as hex boxes: {stats['blank_glyphs']}")
    for role, path in stats["fonts"].items():
        print(f"font {role}: {path}")
    for note in stats["font_notes"]:
        print(f"font note: {note}")
    print(f"build: {stats['build_seconds']:.1f}s; this call {stats['seconds']:.1f}s "
          f"({'cache hit' if stats['cache_hit'] else 'built'}: {stats['cache_path']})")
    print(f"wrote {out} (arrays: embeddings, token_kinds, token_values, token_offsets, labels; "
          "lexi.glyph.npz.read gives each id's exact text)")
    return 0


def tokenizer(args, overrides) -> int:
    from lexi import config as config_lib
    from lexi.rundir import tokenizer_from_config

    cfg = config_lib.base_config()
    cfg.data.corpus = args.corpus
    cfg.data.tokenizer.update(kind=args.kind, vocab_size=args.vocab_size, model_type=args.model_type,
                              num_ngrams=args.num_ngrams)
    config_lib.apply_overrides(cfg, overrides)
    tok = tokenizer_from_config(cfg)
    path = tok.save(Path(args.out))
    print(f"wrote {path}: {tok.name}, {tok.vocab_size} ids, trained on {cfg.data.corpus} (train split); "
          f"load it with lexi.tokenizers.load({str(Path(args.out))!r})")
    return 0


def compile_ahead(args, overrides) -> int:
    # the step is compiled for the pod, never run here: keep JAX off any local accelerator
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from lexi import aot
    from lexi import config as config_lib
    from lexi.errors import UserError

    if args.out and not Path(args.out).expanduser().parent.is_dir():
        raise UserError(f"--out {args.out}: directory {Path(args.out).expanduser().parent} does not exist")
    cfg = config_lib.load_config(args.config, overrides)
    report = aot.compile_for_topology(cfg, args.topology)
    print(aot.format_report(report), file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).expanduser().write_text(text + "\n")
    return 0


def zett_transfer(args, overrides) -> int:
    from lexi.zett.transfer import transfer

    if overrides:
        raise_unexpected(overrides)
    out, target = transfer(Path(args.workdir), args.tokenizer, Path(args.out_workdir), rows=args.rows, seed=args.seed,
                           donor=args.donor, omp_k=args.omp_k)
    print(f"wrote {out}: the base model with {target.vocab_size} {args.rows} rows for {args.tokenizer}; "
          f"evaluate with `lexi eval --workdir {out}`, continue training with "
          f"`lexi train --config {out}/config.json --workdir {out}`")
    return 0


def zett_eval(args, overrides) -> int:
    from lexi.zett.evaluate import format_report, run_zett_eval

    if overrides:
        raise_unexpected(overrides)
    report, path = run_zett_eval(Path(args.workdir), args.tokenizer, text_file=args.text_file,
                                 max_documents=args.max_documents, seed=args.seed, donor=args.donor, omp_k=args.omp_k)
    print(format_report(report))
    print(f"results: {path}")
    return 0


def import_hf(args, overrides) -> int:
    from lexi.hf.convert import import_hf

    out = import_hf(Path(args.path), Path(args.workdir), seq_len=args.seq_len, overrides=overrides)
    print(f"wrote {out}: {args.path} as a lexi run (step 0); evaluate with `lexi eval --workdir {out}`, sample with "
          f"`lexi sample --workdir {out} --prompt ...`, continue training with "
          f"`lexi train --config {out}/config.json --workdir {out}`, or use it as a ZeTT base "
          f"(--config.base_workdir={out})")
    return 0


def export_hf(args, overrides) -> int:
    from lexi.hf.convert import export_hf

    if overrides:
        raise_unexpected(overrides)
    out = export_hf(Path(args.workdir), Path(args.out))
    print(f"wrote {out}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(out)!r}) and "
          f"AutoTokenizer.from_pretrained({str(out)!r})")
    return 0


def _print_report(table: str, paths: dict) -> None:
    print(table)
    for k, v in paths.items():
        print(f"{k}: {v}")


def raise_unexpected(extra) -> None:
    from lexi.errors import UserError

    raise UserError(f"unexpected argument(s): {' '.join(extra)}")
