"""`lexi` command line: train, sample, eval, compare, glyphs, tokenizer, zett (transfer, eval), import-hf, export-hf.

Mistakes a user can fix (lexi.errors.UserError) print one line and exit with status 2;
`--debug` shows the traceback too.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

from lexi import commands
from lexi.data.held_out import HELP as TEXT_FILE_HELP


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lexi", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or resume a run from a config file",
                       description="Overrides: --config.SECTION.FIELD=VALUE (e.g. --config.train.steps=100).")
    t.add_argument("--config", required=True, help="config file with optional variant, e.g. configs/standard.py:tiny")
    t.add_argument("--workdir", required=True, help="run directory; an existing one is resumed")
    t.set_defaults(fn=commands.train)

    s = sub.add_parser("sample", help="continue a prompt with a trained run's newest checkpoint")
    s.add_argument("--workdir", required=True)
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-new", "--max-new-tokens", dest="max_new", type=int, default=200,
                   help="new tokens at most; sampling stops earlier at the end of the text (eos, or the bos "
                        "that starts a next document)")
    s.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    s.add_argument("--top-k", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=int, default=1)
    s.set_defaults(fn=commands.sample)

    e = sub.add_parser("eval", help="evaluation suite on a run's newest checkpoint -> RUN/eval/")
    e.add_argument("--workdir", required=True)
    e.add_argument("--suite", default="perplexity,cipher,reasoning",
                   help="comma-separated: perplexity,cipher,reasoning,mc (mc needs --mc-file)")
    e.add_argument("--mc-file", default=None,
                   help='multiple-choice questions, JSONL: {"question": ..., "choices": [...], "answer": 0 or "A"}')
    e.add_argument("--text-file", default=None, help=TEXT_FILE_HELP)
    e.add_argument("--corpus", default=None, help="evaluate on this corpus' validation split instead of the run's "
                                                 "(e.g. kjv for a run trained on a mixture)")
    e.add_argument("--examples", type=int, default=1000, help="examples per reasoning task and sampler")
    e.add_argument("--sequences", type=int, default=100, help="validation sequences for perplexity and cipher")
    e.add_argument("--probe-steps", type=int, default=1000, help="deciphering probe training steps (paper: 10k)")
    e.add_argument("--probe-pool", type=int, default=512,
                   help="enciphered training windows whose features (every layer) the probes train on, computed "
                        "once; the last 1/8 are held out to choose the layer")
    e.add_argument("--lookup-pairs", default="4,16",
                   help="reasoning: LookUp prompt sizes, comma-separated key->value pair counts; reported as "
                        "'lookup' (4, the paper's) and 'lookup_N'")
    e.add_argument("--permutation-items", type=int, default=4, help="reasoning: items per Permutation row")
    e.add_argument("--permutation-demos", type=int, default=3,
                   help="reasoning: demonstrations of the reordering before the Permutation query")
    e.add_argument("--reasoning-offset", type=int, default=0,
                   help="reasoning: tokens of evaluation text placed before every prompt in the same context, so "
                        "the prompt sits where the model has warmed up (bos, text, separator, prompt must fit in "
                        "the model's seq_len)")
    e.add_argument("--induction-length", type=int, default=32,
                   help="reasoning: length of the random string the induction score repeats (2x this + 1 must fit "
                        "in seq_len); 0 skips it")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(fn=commands.evaluate)

    d = sub.add_parser("demo", help="train + evaluate a lexinvariant and a standard model, print the comparison")
    d.add_argument("--workdir", default="runs/demo")
    d.add_argument("--steps", type=int, default=0, help="training steps per model (0 = the demo config's)")
    d.add_argument("--probe-steps", type=int, default=None, help="cipher probe training steps (default 300; 5 "
                                                                 "with --smoke)")
    d.add_argument("--examples", type=int, default=None, help="examples per reasoning task and sampler (default "
                                                              "200; 8 with --smoke)")
    d.add_argument("--smoke", action="store_true",
                   help="reduced size, to check that the demo works end to end (tests/test_demo.py): the same "
                        "training, evaluation and table with 30 steps of batch 4 per model, 5 probe steps, 8 "
                        "examples and 8 validation sequences; its figures are not results")
    d.set_defaults(fn=commands.demo)

    g = sub.add_parser("glyphs", help="render a tokenizer's frozen glyph embedding table (Bochkov 2025) to .npz",
                       description="Writes arrays `embeddings` [V, cell_px**2] float32 and `tokens` (printable "
                                   "labels) and prints duplicates and font coverage. Cached under --cache-dir.")
    g.add_argument("--tokenizer", default="unicode",
                   help="a name (unicode, char, byte), a .model, a tokenizer.json or a run directory")
    g.add_argument("--out", required=True, help="output .npz file")
    g.add_argument("--cell-px", type=int, default=32, help="pixels per character cell: 32 (1024 dims) or 64 (4096)")
    g.add_argument("--cache-dir", default=None, help="default: $LEXI_CACHE or ~/.cache/lexi")
    g.set_defaults(fn=commands.glyphs)

    k = sub.add_parser("tokenizer", help="train a tokenizer on a corpus and save it in a directory",
                       description="Data overrides as for train, e.g. --config.data.files='a/*.txt' with "
                                   "--corpus text_files.")
    k.add_argument("--corpus", default="kjv", help="kjv | python_code | text_files | tfds:<name>")
    k.add_argument("--kind", default="sentencepiece", help="sentencepiece | unicode (n-grams) | char | byte")
    k.add_argument("--vocab-size", type=int, default=8000, help="sentencepiece")
    k.add_argument("--model-type", default="unigram", help="sentencepiece: unigram | bpe")
    k.add_argument("--num-ngrams", type=int, default=0, help="unicode: learned n-grams")
    k.add_argument("--out", required=True, help="directory for tokenizer.json (+ model file)")
    k.set_defaults(fn=commands.tokenizer)

    z = sub.add_parser("zett", help="zero-shot tokenizer transfer with a trained ZeTT hypernetwork")
    zsub = z.add_subparsers(dest="zett_command", required=True)
    target_help = "target tokenizer: a SentencePiece .model, a tokenizer.json (lexi's or Hugging Face's), " \
                  "a run directory, or a name (byte, char, unicode)"
    zt = zsub.add_parser("transfer", help="write a lexi run directory: base model + new tokenizer + predicted rows")
    zt.add_argument("--workdir", required=True, help="the ZeTT run directory")
    zt.add_argument("--tokenizer", required=True, help=target_help)
    zt.add_argument("--out-workdir", required=True)
    donor_help = "a lexi run directory (trained or imported) whose tokenizer is the target: omp needs one; " \
                 "tokenadapt then measures similarity in its embedding space instead of the base's"
    omp_k_help = "omp: at most this many shared anchor tokens per new token (default 64, mergekit-tokensurgeon's)"
    zt.add_argument("--rows", default="hypernet",
                    choices=("hypernet", "fvt", "lexical", "random", "tokenadapt", "omp"),
                    help="where the new embedding rows come from (omp needs --donor)")
    zt.add_argument("--seed", type=int, default=0)
    zt.add_argument("--donor", default=None, help=donor_help)
    zt.add_argument("--omp-k", type=int, default=64, help=omp_k_help)
    zt.set_defaults(fn=commands.zett_transfer)
    ze = zsub.add_parser("eval", help="bits per byte: original vs hypernetwork vs FVT, lexical, random, "
                                      "tokenadapt rows (and omp with --donor)")
    ze.add_argument("--workdir", required=True, help="the ZeTT run directory")
    ze.add_argument("--tokenizer", required=True, help=target_help)
    ze.add_argument("--text-file", default=None, help=TEXT_FILE_HELP)
    ze.add_argument("--max-documents", type=int, default=0, help="0 = all")
    ze.add_argument("--seed", type=int, default=0)
    ze.add_argument("--donor", default=None, help=donor_help + "; without one the report leaves omp out and says so")
    ze.add_argument("--omp-k", type=int, default=64, help=omp_k_help)
    ze.set_defaults(fn=commands.zett_eval)

    a = sub.add_parser("compile", help="compile the training step for a TPU pod on this machine (needs lexi[tpu]) "
                                       "and print its memory and FLOPs as JSON",
                       description="Overrides as for train; the mesh is the config's (-1 fills the pod).")
    a.add_argument("--config", required=True)
    a.add_argument("--topology", required=True, help="libtpu topology name, e.g. v5e:16x16, v4:2x2x2, v3:2x2")
    a.add_argument("--out", default=None, help="also write the JSON report here")
    a.set_defaults(fn=commands.compile_ahead)

    hi = sub.add_parser("import-hf", help="a Hugging Face model folder (Llama, Mistral, Qwen2, GPT-2) -> a lexi run",
                        description="Reads config.json, *.safetensors (or a sharded index) and tokenizer.json; "
                                    "each device reads only its shard of every tensor. Config overrides "
                                    "(--config.mesh.shape.fsdp=8, --config.train.lr=1e-5) go into the run's config.")
    hi.add_argument("path", help="local model folder, e.g. one written by save_pretrained")
    hi.add_argument("--workdir", required=True, help="the run directory to write (must not hold a run)")
    hi.add_argument("--seq-len", type=int, default=0,
                    help="data.seq_len of the run (0 = the model's context, at most 2048)")
    hi.set_defaults(fn=commands.import_hf)

    he = sub.add_parser("export-hf", help="a lexi run (Llama- or GPT-2-shaped, tokenizer.json tokenizer) -> "
                                          "a Hugging Face model folder")
    he.add_argument("workdir", help="the run directory; its newest checkpoint is exported")
    he.add_argument("--out", required=True, help="folder to write (new or empty)")
    he.set_defaults(fn=commands.export_hf)

    c = sub.add_parser("compare", help="put several evaluated runs side by side")
    c.add_argument("runs", nargs="+")
    c.add_argument("--out", required=True)
    c.set_defaults(fn=commands.compare)
    return p


def _drop_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


def _one_line_warning(message, *args, **kwargs) -> str:
    """How the CLI prints a warning: one line, no source excerpt."""
    return f"lexi: warning: {message}\n"


def _ignore_unraisable(unraisable) -> None:
    """Tensorstore callbacks racing a closed event loop after a failed save: nothing to report."""


def _drop_unretrieved_orbax_task(record: logging.LogRecord) -> bool:
    """asyncio's "Task exception was never retrieved" for orbax's write tasks after a failed save,
    logged when the tasks are collected (often at exit): lexi has already reported the failure."""
    return not (str(record.msg).startswith("Task exception was never retrieved") and "orbax" in str(record.msg))


def main(argv=None) -> int:
    """Run one `lexi` command; returns its exit status. Without --debug, warnings print as one
    line and library tracebacks are dropped while the command runs; the previous settings are
    put back on return, so calling main from Python leaves the interpreter as it was. As the
    process's entry point (argv None) the asyncio filter stays until exit, since orbax's failed
    write tasks are reported when they are collected, after main returns."""
    from lexi.errors import UserError

    argv_given, argv = argv, list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)  # "no TPU" notices on CPU hosts
    absl, saved = logging.getLogger("absl"), (warnings.formatwarning, sys.unraisablehook)
    aio, entry_point = logging.getLogger("asyncio"), argv_given is None
    if not args.debug:  # library threads (orbax) log tracebacks for errors lexi reports in one line itself
        absl.addFilter(_drop_traceback)
        aio.addFilter(_drop_unretrieved_orbax_task)
        warnings.formatwarning, sys.unraisablehook = _one_line_warning, _ignore_unraisable
    try:
        return args.fn(args, extra)
    except UserError as e:
        if args.debug:
            raise
        print(f"lexi: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lexi: interrupted; run the same command again to resume from the newest checkpoint", file=sys.stderr)
        return 130
    except Exception as e:
        from lexi.train.loop import TrainingStopped

        if isinstance(e, TrainingStopped):
            print(f"lexi: {e}", file=sys.stderr)
            return e.exit_code
        raise
    finally:
        absl.removeFilter(_drop_traceback)
        if not entry_point:
            aio.removeFilter(_drop_unretrieved_orbax_task)
        warnings.formatwarning, sys.unraisablehook = saved


if __name__ == "__main__":
    sys.exit(main())
