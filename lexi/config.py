"""Run configuration: ml_collections ConfigDicts with every field spelled out.

Config files (configs/*.py) define `get_config(variant)` starting from `base_config()`.
On the command line a file is named with its variant after a colon
(`configs/standard.py:tiny`) and any field can be overridden with `--config.a.b=value`.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from lexi.errors import UserError
from lexi.model.config import BackboneConfig


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # one integer decides initialisation, data order, random embeddings, dropout
    c.task = "lm"  # lm: train a language model | zett: a hypernetwork for a trained one (configs/zett.py)
    c.model = ml_collections.ConfigDict(dataclasses.asdict(BackboneConfig()))
    c.embedding = ml_collections.ConfigDict({
        "kind": "trainable",  # trainable | lexinvariant | regularized | frozen (lexi/embeddings/<kind>.py)
        "tied": True,  # trainable: the readout reuses the input table
        "readout_chunk": 0,  # >0: readout over vocabulary chunks of this size, never B x L x V logits
        # all | train_split: rows only for the ids the training split uses (counted at the run's start, saved as
        # readout_ids.json) plus one "other" logit whose probability the unused ids share evenly, so the model
        # still defines a distribution over every id (trainable, frozen; lexi/embeddings/readout.py)
        "readout_ids": "all",
    })
    c.data = ml_collections.ConfigDict({
        "corpus": "kjv",  # kjv | python_code | text_files | tfds:<name> | mixture (of `mixture`)
        "mixture": "",  # corpus=mixture: corpus:weight items by share of characters, e.g. "kjv:0.8,python_code:0.2"
        "repeat_share": 0.0,  # share of training windows with a span of their text copied on (lexi/data/repeats.py)
        "repeat_length": 64,  # longest such span; spans are [repeat_length / 4, repeat_length] tokens
        "files": "",  # text_files: glob(s) of .txt / .jsonl, either optionally .gz, comma separated
        "text_field": "text",  # .jsonl and TFDS feature holding the text
        "val_fraction": 0.04,  # share of documents held out, by a hash of their key (KJV: 49 chapters)
        "max_documents": 0,  # 0 = all
        "tfds_split": "train",  # tfds:<name> corpora: the split to train on
        "tfds_validation_split": "validation",  # tfds: the held-out split (e.g. "validation", "test")
        "tfds_data_dir": "",  # tfds: data_dir with the prepared dataset; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
        "seq_len": 128,  # tokens per training sequence (the context length)
        # cached: every process tokenizes the whole split once into a cached .npy, then shuffles all its windows (small
        # corpora; batches a pure function of the step) | streaming: read, tokenize and pack on the fly with Grain,
        # each process its own files, in bounded memory, nothing written (large corpora; lexi/data/streaming.py)
        "input_pipeline": "cached",
        "streaming_open_files": 4,  # streaming: files each process reads at once, their documents interleaved
        # streaming: documents shuffled together (a window held in memory; tfds: unused, its shuffle is global);
        # ZeTT: the documents its text is drawn from at a time
        "streaming_shuffle_documents": 10000,
        "streaming_shuffle_rows": 1024,  # streaming: packed rows shuffled together, so a long document spreads out
        "streaming_validation_documents": 2000,  # streaming: validation reads only the split's first N documents
        # streaming: worker processes that tokenize (lexi/data/stream_encode.py): the same batches, for tokenizers
        # written in Python (char, unicode, bytes) on hosts with cores to spare; 0 = in the loading thread
        "streaming_tokenizer_processes": 0,
        # streaming: a .jsonl line that is not a JSON object with a string text_field stops the run (False) or is
        # skipped with a warning and a running count (True); resuming with it changed is allowed
        "streaming_skip_bad_lines": False,
        "cache_dir": "",  # token streams and trained tokenizers; "" = ~/.cache/lexi
        "tokenizer": ml_collections.ConfigDict({
            # char (ASCII, 128) | corpus_chars (the train split's characters + 4) | byte (259) | unicode (65,536)
            # | sentencepiece
            "kind": "char",
            "vocab_size": 8000,  # sentencepiece: trained on the corpus' train split
            "model_type": "unigram",  # sentencepiece: unigram | bpe
            "model_file": "",  # sentencepiece: an existing .model (e.g. T5's) instead of training
            "num_ngrams": 0,  # unicode: frequent 2..max_n-grams learned on the train split (<= 8188)
            "max_n": 3,  # unicode: longest learned n-gram, in characters (<= 8)
        }),
    })
    c.train = ml_collections.ConfigDict({
        "steps": 200,  # optimizer steps; the schedule ends here
        "batch_size": 32,  # global sequences per optimizer step
        "grad_accum": 1,  # micro-batches per step (batch_size must divide by it)
        "optimizer": "adamw",  # adamw | adafactor
        "lr": 3e-3,  # peak learning rate, reached after warmup
        "schedule": "cosine",  # cosine | linear | constant, after linear warmup
        "warmup_steps": 50,  # linear warmup from 0
        "end_lr_ratio": 0.1,  # final lr = lr * end_lr_ratio
        "b1": 0.9,  # adamw first-moment decay
        "b2": 0.95,  # adamw second-moment decay
        "eps": 1e-8,  # adamw denominator epsilon
        "weight_decay": 0.01,  # matrices only
        "grad_clip": 1.0,  # global norm; 0 = off
        "trainable": "",  # regex over parameter paths ('embedding/table'); only matches train; "" = all
        "log_every": 10,  # metrics.jsonl / TensorBoard / progress bar every N steps
        "eval_every": 100,  # validation loss every N steps and at the end; 0 = only at the end
        "eval_batches": 4,  # validation batches of batch_size sequences
        "checkpoint_every": 100,  # and at the end, and on SIGTERM
        "keep_checkpoints": 3,  # newest N kept; older ones deleted only after a newer one is complete
        "nonfinite": "stop",  # stop | skip: what a non-finite loss or gradient does
        "peak_flops": 0.0,  # MFU denominator for all devices together; 0 = datasheet or measured
        "prefetch": 2,  # batches prepared ahead on the host
        "progress_bar": True,  # tqdm bar on process 0
    })
    c.mesh = ml_collections.ConfigDict({
        "shape": ml_collections.ConfigDict({  # devices per axis; -1 (one axis at most): the remaining devices
            "data": -1,  # splits the batch; parameters replicated
            "fsdp": 1,  # splits the batch and every parameter and optimizer slot
            "tensor": 1,  # splits heads, MLP units and vocabulary rows
        }),
        "rules": (),  # ((logical_name, mesh_axis_or_None), ...); empty = lexi.sharding.DEFAULT_RULES
    })
    c.distributed = ml_collections.ConfigDict({
        # auto: join a multi-process run when coordinator settings are given (here or as JAX_COORDINATOR_ADDRESS,
        # JAX_NUM_PROCESSES, JAX_PROCESS_ID) or a cluster is detected (TPU pod, SLURM, ...); on: must; off: never
        "mode": "auto",
        "coordinator_address": "",  # HOST:PORT of process 0, the same for every process
        "num_processes": 0,  # 0: from the environment
        "process_id": -1,  # -1: from the environment
        "initialization_timeout_s": 300,  # how long a process waits for the others before a clear error
    })
    return c


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """`path.py[:variant]`, or a run's `config.json` (to continue that run), plus
    `--config.a.b=value` overrides."""
    path, _, variant = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        file = packaged_config(path)
    if file is None:
        raise UserError(f"config file {path!r} does not exist (nor is it one of lexi's own: "
                        f"{', '.join(sorted(p.name for p in _packaged_dir().glob('[!_]*.py')))})")
    if file.suffix == ".json":
        try:
            cfg = ml_collections.ConfigDict(json.loads(file.read_text()))
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"config file {path} is not valid JSON: {e}") from e
        apply_overrides(cfg, overrides)
        return cfg
    mod_spec = importlib.util.spec_from_file_location(f"lexi_config_{file.stem}", file)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"config file {path} failed to load: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise UserError(f"config file {path} has no get_config() function")
    cfg = module.get_config(variant) if variant else module.get_config()
    apply_overrides(cfg, overrides)
    return cfg


def _packaged_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("lexi.configs")))


def packaged_config(path: str) -> Path | None:
    """lexi's own config file of that name (`configs/zett.py`, `zett.py` or `zett`), wherever
    lexi is installed; None if there is none."""
    name = Path(path).name
    file = _packaged_dir() / (name if name.endswith(".py") else f"{name}.py")
    return file if file.is_file() and not name.startswith("_") else None


def _parse_value(text: str, current: Any, key: str) -> Any:
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if isinstance(current, bool):
            lowered = text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
        raise UserError(f"--config.{key}={text}: cannot parse {text!r} as a {type(current).__name__}")
    if isinstance(current, bool) and not isinstance(value, bool):
        raise UserError(f"--config.{key}={text}: expected true or false")
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if current is not None and not isinstance(value, type(current)) and not (
            isinstance(current, (tuple, list)) and isinstance(value, (tuple, list))):
        raise UserError(f"--config.{key}={text}: expected a {type(current).__name__}, got {type(value).__name__}")
    return value


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    for item in overrides:
        if not item.startswith("--config."):
            raise UserError(f"unexpected argument {item!r}; overrides look like --config.train.steps=100")
        key, eq, text = item[len("--config."):].partition("=")
        if not eq:
            raise UserError(f"override {item!r} needs a value: --config.{key}=VALUE")
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
                raise UserError(f"--config.{key}: there is no config section {p!r}")
            node = node[p]
        leaf = parts[-1]
        if leaf not in node:
            raise UserError(f"--config.{key}: unknown field {leaf!r}; fields here: {sorted(node.keys())}")
        node[leaf] = _parse_value(text, node[leaf], key)


def to_json(cfg: ml_collections.ConfigDict) -> str:
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str)


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Checks that need no devices or data; run before anything is loaded or written."""
    t = cfg.train
    def need(cond, msg):
        if not cond:
            raise UserError(msg)
    need(t.steps > 0, f"config.train.steps must be positive, got {t.steps}")
    need(t.batch_size > 0, f"config.train.batch_size must be positive, got {t.batch_size}")
    need(t.grad_accum > 0 and t.batch_size % t.grad_accum == 0,
         f"config.train.batch_size ({t.batch_size}) must be a multiple of grad_accum ({t.grad_accum})")
    need(t.lr > 0, f"config.train.lr must be positive, got {t.lr}")
    need(t.warmup_steps >= 0, "config.train.warmup_steps must be >= 0")
    need(t.nonfinite in ("stop", "skip"), f"config.train.nonfinite must be 'stop' or 'skip', got {t.nonfinite!r}")
    need(cfg.data.seq_len > 1, f"config.data.seq_len must be at least 2, got {cfg.data.seq_len}")
    need(t.log_every > 0 and t.checkpoint_every > 0, "config.train.log_every and checkpoint_every must be positive")
    BackboneConfig.from_dict(dict(cfg.model))
    if cfg.get("task", "lm") == "lm":
        from lexi import embeddings

        embeddings.restricts_readout(dict(cfg.embedding))  # a bad value or a family that cannot take it
    from lexi.data import repeats

    repeats.check(cfg.data.get("repeat_share", 0.0), cfg.data.get("repeat_length", 64), cfg.data.seq_len)
    _validate_input_pipeline(cfg.data)
    if cfg.data.get("mixture") or cfg.data.corpus == "mixture":
        from lexi.data.corpora import get_corpus

        get_corpus(cfg.data)  # a bad mixture spec stops here; corpora are opened lazily, nothing is read
    if cfg.model.position == "learned" and cfg.model.max_len < cfg.data.seq_len:
        raise UserError(f"config.model.max_len ({cfg.model.max_len}) is shorter than data.seq_len ({cfg.data.seq_len})")


def _validate_input_pipeline(d) -> None:
    kind = d.get("input_pipeline", "cached")
    if kind not in ("cached", "streaming"):
        raise UserError(f"config.data.input_pipeline must be 'cached' or 'streaming', got {kind!r}")
    if kind != "streaming":
        return
    for name, low in (("streaming_open_files", 1), ("streaming_shuffle_documents", 0), ("streaming_shuffle_rows", 0),
                      ("streaming_validation_documents", 1), ("streaming_tokenizer_processes", 0)):
        if int(d.get(name, low)) < low:
            raise UserError(f"config.data.{name} must be >= {low}, got {d.get(name)}")
