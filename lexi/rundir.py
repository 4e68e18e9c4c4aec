"""A run directory: what it records at its first start and what a later reader takes from it.

A run directory holds config.json, tokenizer.json (and any model file it names), a
restricted readout's id set, checkpoints/ and metrics.jsonl. Training writes them
(lexi/train/); eval, sampling, export and ZeTT read them through `read_config` and
lexi/inference.py, without building an optimizer. The records decided at the first start
(tokenizer, readout ids) are checked to be the same on every process of a multi-host run.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jax
import ml_collections
import numpy as np

from lexi.config import base_config
from lexi.errors import UserError
from lexi.train.checkpoint import Checkpointer  # the checkpoint reader: all orbax use is there

# Sections whose change makes a checkpoint meaningless for this run.
_IDENTITY_SECTIONS = ("model", "embedding")


_NOT_THIS_TASK = {
    "lm": "it holds a ZeTT hypernetwork, not a language model: use `lexi zett eval` or `lexi zett transfer "
          "--workdir {workdir} ...` (which writes a language-model run)",
    "zett": "it is not a ZeTT run (config task {task!r}); train one with "
            "`lexi train --config configs/zett.py:small --config.base_workdir=...`",
}


def read_config(workdir: Path, task: str = "") -> ml_collections.ConfigDict:
    """The run's config.json, refused with one clear message when `workdir` is not a run (or,
    with `task`, not a run of that task)."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise UserError(f"{workdir} is not a lexi run directory (no config.json); train one with `lexi train`")
    cfg = ml_collections.ConfigDict(json.loads(path.read_text()))
    if task and cfg.get("task", "lm") != task:
        raise UserError(f"{workdir}: " + _NOT_THIS_TASK[task].format(workdir=workdir, task=cfg.get("task", "lm")))
    return cfg


def read_metrics(workdir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (written by lexi/train/metrics_log.py), oldest first."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def newest_checkpoint(workdir: Path, keep: int = 1):
    """(Checkpointer, newest step) of a run directory, refused when it has none; close the
    Checkpointer after reading."""
    ckpt_dir = Path(workdir) / "checkpoints"
    step = None
    if ckpt_dir.exists():
        ckpt = Checkpointer(ckpt_dir, keep=keep, async_save=False)
        step = ckpt.latest_step()
    if step is None:
        raise UserError(f"{workdir} has no checkpoint yet; train it with `lexi train` first")
    return ckpt, step


def cache_dir(cfg) -> Path:
    return Path(cfg.data.cache_dir or os.environ.get("LEXI_CACHE", Path.home() / ".cache" / "lexi"))


def load_tokenizer(cfg, workdir: Path):
    """The run's tokenizer: the one saved in the run directory, else built from config and saved."""
    from lexi import tokenizers

    return _saved_or_made(workdir / "tokenizer.json", lambda: tokenizers.load(str(workdir)),
                          lambda: tokenizer_from_config(cfg), lambda tok: tok.save(str(workdir)),
                          lambda tok: tok.fingerprint(), "tokenizer")


def _saved_or_made(path: Path, load, make, save, fingerprint, what: str):
    """A run directory's record decided at its first start: loaded when `path` exists (process
    0's view, so that every process takes the same branch), else made and saved by process 0,
    after every process has its copy (nobody reads a half-written file); checked to be the same
    on all processes."""
    saved = path.exists()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        saved = bool(multihost_utils.broadcast_one_to_all(np.int32(saved)))
    obj = load() if saved else make()
    check_same_on_all_processes(fingerprint(obj), what)
    if not saved and jax.process_index() == 0:
        save(obj)
    return obj


def load_used_ids(cfg, workdir: Path, tokenizer):
    """The ids a restricted readout scores (config.embedding.readout_ids = "train_split"), or None:
    the set saved in the run directory, else the training split's ids, counted and saved, so a
    resumed run, `lexi eval` and `lexi sample` score exactly the set the run started with."""
    from lexi import embeddings
    from lexi.embeddings.readout import FILE, UsedIds

    if not embeddings.restricts_readout(dict(cfg.embedding)):
        return None
    path = workdir / FILE
    return _saved_or_made(path, lambda: UsedIds.load(path), lambda: UsedIds.from_counts(token_counts(cfg, tokenizer)),
                          lambda used: used.save(path), lambda used: used.fingerprint, "readout id set")


def tokenizer_from_config(cfg):
    """The tokenizer `config.data.tokenizer` asks for, trained on the train split of
    `config.data`'s corpus when it must be (and cached, so the corpus is read once)."""
    from lexi import tokenizers
    from lexi.data.corpora import get_corpus

    corpus = get_corpus(cfg.data)
    return tokenizers.from_config(cfg.data.tokenizer, lambda: corpus.documents("train"), cache_dir(cfg),
                                  corpus_key=corpus.fingerprint())


def check_same_on_all_processes(text: str, what: str) -> None:
    """Every process builds its own copy of `what`; a difference would silently train a different
    model per host, so stop with a clear error instead."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    mine = np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    if not (every == every[0]).all():
        raise UserError(f"the processes of this run built different {what}s (process {jax.process_index()} differs): "
                        "give every process the same config and data, or build it once and share the run directory")


def check_resume_compatible(cfg, workdir: Path, identity: tuple = _IDENTITY_SECTIONS) -> None:
    """Refuse to resume a checkpoint with a different model (the `identity` config sections,
    and the tokenizer)."""
    saved = workdir / "config.json"
    if not saved.exists():
        return
    old = json.loads(saved.read_text())
    new = cfg.to_dict()
    defaults = base_config().to_dict()
    defaults["tokenizer"] = defaults["data"]["tokenizer"]
    sections = {sec: (old[sec], new[sec]) for sec in identity if sec in old}
    if "tokenizer" in old.get("data", {}):
        sections["tokenizer"] = (old["data"]["tokenizer"], new["data"]["tokenizer"])
    diffs = []
    for sec, (was, now) in sections.items():
        # a key the saved config lacks was added to lexi since: it had its default value
        was = {**{k: v for k, v in defaults.get(sec, {}).items() if k in now}, **was}
        name = "data.tokenizer" if sec == "tokenizer" else sec
        diffs += [f"{name}.{k}: {was.get(k)!r} -> {now.get(k)!r}"
                  for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
    if diffs:
        raise UserError(f"{workdir} holds a checkpoint of a different model; changed: " + "; ".join(diffs)
                        + ". Use a new --workdir, or restore the old settings to resume.")


def token_counts(cfg, tokenizer) -> np.ndarray:
    """`train_token_counts` before there is a Run. With the streaming input pipeline the split is
    read once and counted without writing a token stream (still a full pass: a restricted readout
    or a frozen table's used ids need every id the run can meet)."""
    from lexi.data.corpora import get_corpus
    from lexi.data.pipeline import build_token_stream

    if cfg.data.get("input_pipeline", "cached") == "streaming":
        from lexi.data.streaming import count_tokens

        return count_tokens(get_corpus(cfg.data), tokenizer)
    stream = build_token_stream(get_corpus(cfg.data), "train", tokenizer, cache_dir(cfg), seq_len=cfg.data.seq_len)
    counts = np.zeros(tokenizer.vocab_size, np.int64)
    for start in range(0, len(stream), 1 << 24):  # bounded memory on a memory-mapped stream
        counts += np.bincount(np.asarray(stream[start:start + (1 << 24)]), minlength=tokenizer.vocab_size)
    return counts
