"""`lexi eval`: the evaluation suite on a run directory's newest checkpoint."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.eval import report

log = logging.getLogger("lexi")
SUITES = ("perplexity", "cipher", "reasoning", "mc")
DEFAULT_SUITES = ("perplexity", "cipher", "reasoning")  # "mc" needs a questions file
# input_pipeline=streaming: the cipher probe pool and the reasoning symbols' frequencies come from the
# train split's first EVAL_TRAIN_DOCUMENTS documents, read up to EVAL_TRAIN_TOKENS tokens (what the
# reasoning counts read of a cached stream at most), instead of a cached stream of the whole split
EVAL_TRAIN_DOCUMENTS = 10_000
EVAL_TRAIN_TOKENS = 5_000_000


def _split_tokens(cfg, data_cfg, split: str, tok) -> np.ndarray:
    """int32[N]: the split's token stream as training saw it. The cached pipeline's .npy (built if
    missing); with input_pipeline=streaming a bounded head read in memory and nothing written:
    validation's first data.streaming_validation_documents documents, as training validated on, and
    the train split's first EVAL_TRAIN_DOCUMENTS documents (at most ~EVAL_TRAIN_TOKENS tokens)."""
    from lexi.data.corpora import get_corpus
    from lexi.rundir import cache_dir

    seq_len = cfg.data.seq_len
    if cfg.data.get("input_pipeline", "cached") != "streaming":
        from lexi.data.pipeline import build_token_stream

        return build_token_stream(get_corpus(data_cfg), split, tok, cache_dir(cfg),
                                  seq_len=seq_len if split == "validation" else None)
    from lexi.data import streaming

    if split == "validation":
        return streaming.validation_tokens(get_corpus(data_cfg), tok,
                                           int(cfg.data.get("streaming_validation_documents", 2000)), seq_len=seq_len)
    return streaming.head_tokens(get_corpus(data_cfg), tok, split, EVAL_TRAIN_DOCUMENTS, seq_len=seq_len,
                                 max_tokens=EVAL_TRAIN_TOKENS)


def run_suite(workdir: Path, suites: Sequence[str] = DEFAULT_SUITES, *, text_file: Optional[Path] = None,
              examples: int = 1000, seed: int = 0, num_sequences: int = 100, probe_steps: int = 1000,
              probe_pool: int = 512, out_dir: Optional[Path] = None, mc_file: Optional[Path] = None,
              reasoning_offset: int = 0, lookup_pairs: Sequence[int] = (4, 16), induction_length: int = 32,
              task_params: Optional[dict] = None, corpus: Optional[str] = None) -> dict:
    """`corpus` scores another corpus' validation split than the run's (e.g. `kjv` for a run trained on
    a mixture); the cipher probes and the reasoning symbols still come from the run's own train split.
    A run with input_pipeline=streaming writes no token stream here either (`_split_tokens`)."""
    from lexi.data.held_out import document_tokens, read_documents
    from lexi.data.pipeline import eval_windows
    from lexi.eval import decipher, mc, perplexity, reasoning
    from lexi.inference import load_for_inference

    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        raise UserError(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    if "mc" in suites and not mc_file:
        raise UserError("the mc suite needs --mc-file questions.jsonl")
    questions = mc.load_questions(Path(mc_file)) if "mc" in suites else None
    loaded = load_for_inference(Path(workdir))
    cfg, tok, model, variables = loaded.cfg, loaded.tokenizer, loaded.model, loaded.variables
    seq_len = cfg.data.seq_len
    if corpus and text_file:
        raise UserError("give --corpus or --text-file, not both: each replaces the validation split")
    val_data = cfg.data.copy_and_resolve_references()
    if corpus:
        val_data.corpus, val_data.mixture = corpus, ""
    train_tokens = _split_tokens(cfg, cfg.data, "train", tok) if {"cipher", "reasoning"} & set(suites) else None
    val_tokens = document_tokens(read_documents(text_file), tok) if text_file else \
        _split_tokens(cfg, val_data, "validation", tok)
    if len(val_tokens) < seq_len + 1:
        raise UserError(f"the evaluation text has {len(val_tokens)} tokens, fewer than one sequence of {seq_len + 1}")
    windows = {k: np.asarray(v) for k, v in
               eval_windows(val_tokens, seq_len, num_sequences, tok.bos_id, start_at_document=True,
                                pad_id=tok.pad_id).items()}
    if "cipher" in suites:
        decipher.check_settings(probe_steps=probe_steps, probe_pool=probe_pool)
    if "reasoning" in suites:
        reasoning.check_settings(tok, seq_len=seq_len, task_params=task_params, lookup_pairs=lookup_pairs,
                                 offset=reasoning_offset, text_tokens=val_tokens, induction_length=induction_length)
    results: dict = {"workdir": str(workdir), "step": loaded.step, "seed": seed,
                     "evaluated_on": str(text_file) if text_file else f"{val_data.corpus} (validation split)",
                     "embedding": dict(cfg.embedding), "tokenizer": tok.name, "seq_len": seq_len}
    timings = {}
    for name in suites:
        t0 = time.perf_counter()
        log.info("eval: %s", name)
        if name == "perplexity":
            results[name] = perplexity.evaluate(model, variables, tok, windows, seed=seed)
        elif name == "cipher":
            results[name] = decipher.evaluate(model, variables, tok, train_tokens, windows, probe_steps=probe_steps,
                                              probe_pool=probe_pool, seed=seed, log=log.info)
        elif name == "reasoning":
            results[name] = reasoning.evaluate(model, variables, tok, train_tokens, examples=examples, seed=seed,
                                               task_params=task_params, lookup_pairs=lookup_pairs,
                                               offset=reasoning_offset, text_tokens=val_tokens, seq_len=seq_len,
                                               induction_length=induction_length)
        elif name == "mc":
            results[name] = mc.evaluate(model, variables, tok, questions, seq_len=seq_len, seed=seed)
            results[name]["file"] = str(mc_file)
        timings[name] = time.perf_counter() - t0
    results["seconds"] = timings
    out = Path(out_dir) if out_dir else Path(workdir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    paths = report.write_report({Path(workdir).name: results}, out, f"lexi eval: {workdir} (step {loaded.step})")
    results["_paths"] = {k: str(v) for k, v in paths.items()}
    return results


def compare(run_dirs: Sequence[Path], out_dir: Path) -> dict:
    named = {Path(r).name: report.load_results(Path(r)) for r in run_dirs}
    if len(set(named)) != len(run_dirs):
        named = {str(r): report.load_results(Path(r)) for r in run_dirs}
    paths = report.write_report(named, Path(out_dir), "lexi compare: " + ", ".join(named))
    (Path(out_dir) / "results.json").write_text(json.dumps(named, indent=2))
    return {"table": report.markdown_table(named), "paths": {k: str(v) for k, v in paths.items()}}
