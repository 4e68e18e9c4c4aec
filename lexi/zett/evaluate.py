"""Tokenizer transfer measured in bits per byte, which do not depend on the tokenizer.

Every held-out document is encoded whole (bos first) and scored in consecutive windows of
`seq_len` targets, so each byte of text is predicted exactly once whatever the tokenizer;
bits per byte = total NLL / ln 2 / UTF-8 bytes of the documents. The same documents are
scored with the base model and its own tokenizer ("original"), and with the frozen base
behind rows for the target tokenizer from the hypernetwork and from each baseline, the
transplantation methods tokenadapt and omp included. omp needs a donor (a run whose tokenizer
is the target); without one it is left out and the report's "skipped" says why.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np

from lexi.embeddings.predicted import tables
from lexi.data.packing import sequence_windows
from lexi.errors import UserError
from lexi.eval import scoring
from lexi.model.lm import LanguageModel
from lexi.zett.transfer import BASELINES, Trained, baseline_rows, load_trained, predict_rows
from lexi.zett.transplant import NEEDS_DONOR, OMP_K, Donor, load_donor


def document_windows(tok, docs: Sequence[str], seq_len: int) -> dict:
    """[N, seq_len] windows covering every document's tokens once (bos before each)."""
    chunks = []
    for ids in tok.encode_batch_np(list(docs)):
        seq = np.concatenate([[tok.bos_id], ids]).astype(np.int32)
        chunks += [seq[lo:lo + seq_len + 1] for lo in range(0, len(seq) - 1, seq_len)]
    if not chunks:
        raise UserError("the evaluation text holds no tokens")
    return sequence_windows(chunks, tok.pad_id, seq_len)


def total_nll(model, variables, windows: dict, ctx=None, batch_size: int = 16) -> tuple[float, int]:
    nll = scoring.token_nll(model, variables, windows, batch_size=batch_size, ctx=ctx)
    mask = windows["loss_mask"]
    return float((nll * mask).sum()), int(mask.sum())


def _total_bytes(docs: Sequence[str]) -> int:
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    if n_bytes == 0:
        raise UserError("the evaluation text is empty")
    return n_bytes


def run_bits_per_byte(workdir: str | Path, docs: Sequence[str], *, seq_len: int,
                      batch_size: int = 16) -> tuple[float, int]:
    """(bits per byte, tokens scored) of a language-model run's newest checkpoint on `docs`
    with its own tokenizer: the "original" row for the base, and any moved run after
    continued training (benchmarks/zett_transfer_train.py), scored by the same code."""
    from lexi.inference import load_for_inference

    n_bytes = _total_bytes(docs)
    loaded = load_for_inference(Path(workdir))
    win = document_windows(loaded.tokenizer, docs, seq_len)
    nll, n_tokens = total_nll(loaded.model, loaded.variables, win, batch_size=batch_size)
    return nll / math.log(2) / n_bytes, n_tokens


def transfer_report(trained: Trained, target, docs: Sequence[str], *, seq_len: int, seed: int = 0,
                    batch_size: int = 16, donor: Optional[Donor] = None, omp_k: int = OMP_K) -> dict:
    """Bits per byte of `docs` for the original model and every way of making target rows
    (omp only with a `donor`; tokenadapt reads the donor too when there is one)."""
    base = trained.base
    n_bytes = _total_bytes(docs)
    original, n_base = run_bits_per_byte(base.workdir, docs, seq_len=seq_len, batch_size=batch_size)
    bpb = {"original": original}

    lm = LanguageModel(base.backbone, base.predicted(target.vocab_size))
    variables = {"params": {"body": base.params["body"]}}
    win = document_windows(target, docs, seq_len)
    mask = jnp.ones(target.vocab_size, bool)
    methods = {"hypernet": lambda: predict_rows(trained, target)}
    methods.update({m: (lambda m=m: baseline_rows(base, target, m, seed, donor=donor, omp_k=omp_k))
                    for m in BASELINES if m != "omp" or donor is not None})
    seconds = {}
    n_target = 0
    for name, make in methods.items():
        t0 = time.perf_counter()
        rows_in, rows_out = make()
        seconds[name] = time.perf_counter() - t0
        nll, n_target = total_nll(lm, variables, win, tables(jnp.asarray(rows_in), jnp.asarray(rows_out), mask),
                                  batch_size)
        bpb[name] = nll / math.log(2) / n_bytes
    report = {"bits_per_byte": bpb,
              "tokens_per_byte": {"original": n_base / n_bytes, "target": n_target / n_bytes},
              "bytes": n_bytes, "documents": len(docs), "seq_len": seq_len,
              "target_vocab_size": int(target.vocab_size), "hypernet_step": trained.step,
              "seconds_to_make_rows": seconds}
    if donor is None:
        report["skipped"] = {"omp": NEEDS_DONOR}
    else:
        report.update(donor=str(donor.workdir), omp_k=omp_k)
    return report


def run_zett_eval(workdir: str | Path, tokenizer_spec: str, *, text_file: Optional[str] = None,
                  max_documents: int = 0, seed: int = 0, donor: Optional[str | Path] = None,
                  omp_k: int = OMP_K) -> tuple[dict, Path]:
    """`lexi zett eval`: the report for one target tokenizer, written to RUN/eval/zett_<name>.json.
    `donor`: a run directory whose tokenizer is the target (adds omp)."""
    from lexi import tokenizers

    if omp_k < 1:
        raise UserError(f"--omp-k must be at least 1 (anchors per new token), got {omp_k}")
    trained = load_trained(workdir)
    target = tokenizers.load(tokenizer_spec)
    loaded = load_donor(donor, target) if donor else None
    docs = evaluation_documents(trained.cfg.data, text_file, max_documents)
    report = transfer_report(trained, target, docs, seq_len=int(trained.cfg.data.seq_len), seed=seed,
                             donor=loaded, omp_k=omp_k)
    report.update(tokenizer=str(tokenizer_spec), text=text_file or f"{trained.cfg.data.corpus} validation")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(tokenizer_spec)).name)
    out = Path(workdir) / "eval" / f"zett_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report, out


def evaluation_documents(data_cfg, text_file: Optional[str] = None, max_documents: int = 0) -> list[str]:
    """What `lexi zett eval` scores: the documents of `text_file` (lexi/data/held_out.py), else the
    validation split of `data_cfg`'s corpus; the first `max_documents` (0: all). One function, so
    benchmarks/zett_transfer_train.py scores a moved and trained model on exactly this text."""
    from lexi.data.corpora import get_corpus
    from lexi.data.held_out import read_documents

    if text_file:
        docs = read_documents(text_file)
    else:
        docs = list(get_corpus(data_cfg).documents("validation"))
    return docs[:max_documents] if max_documents else docs


def format_report(report: dict) -> str:
    bpb, tpb = report["bits_per_byte"], report["tokens_per_byte"]
    lines = [f"target {report.get('tokenizer', '')}: {report['target_vocab_size']} ids, "
             f"{tpb['target']:.3f} tokens/byte (original {tpb['original']:.3f}); {report['bytes']} bytes",
             "| rows | bits/byte | vs original |", "|---|---|---|"]
    for k, v in bpb.items():
        lines.append(f"| {k} | {v:.3f} | {v / bpb['original']:.3f}x |")
    lines += [f"not run: {k}: {why}" for k, why in report.get("skipped", {}).items()]
    return "\n".join(lines)
