"""`lexi import-hf` and `lexi export-hf`: Hugging Face model folders <-> lexi run directories.

Import reads config.json, the safetensors weights (one file or an index of shards) and
tokenizer.json, and writes a normal run directory: lexi's config (the backbone fields the
architecture needs, a trainable embedding with the plain h . E^T readout), the tokenizer as
lexi's `hf` kind, hf_import.json (the source config) and a step-0 checkpoint. Every
parameter is built with `jax.make_array_from_callback` from a memory-mapped view of its
tensor, so each device reads only its own shard of it and the checkpoint never sits whole
in host memory. Parameters become float32 (lexi's parameter dtype).

Export writes config.json, model.safetensors (sharded above 5 GB), tokenizer.json and
tokenizer_config.json, for runs whose architecture maps (lexi/hf/architectures.py).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from lexi.config import apply_overrides, validate
from lexi.embeddings.trainable import readout_scale
from lexi.errors import UserError
from lexi.hf import architectures as arch
from lexi.hf.safetensors import Checkpoint, write

log = logging.getLogger("lexi")
IMPORT_RECORD = "hf_import.json"
# buffers some checkpoints carry that are not weights (rotary tables, GPT-2's causal masks)
IGNORED = (".rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias")


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory; pass a Hugging Face model folder (config.json, "
                        "*.safetensors, tokenizer.json)")
    if not path.exists():
        raise UserError(f"{folder} has no config.json; pass a Hugging Face model folder")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


def run_config(model: dict, emb: dict, context: int, vocab_size: int) -> ml_collections.ConfigDict:
    """The imported run's config: base_config() with the architecture's backbone and readout
    (`architectures.to_lexi`), the HF tokenizer, and gentle continued-training settings
    (override on `lexi train`)."""
    from lexi.config import base_config

    cfg = base_config()
    cfg.model.update(model)
    for k, v in emb.items():
        cfg.embedding[k] = v
    cfg.data.seq_len = context
    cfg.data.tokenizer.update(kind="hf", vocab_size=int(vocab_size), model_file="")
    # continued training starts from a trained model: a small learning rate, short warmup
    cfg.train.update(lr=2e-5, warmup_steps=20, batch_size=8, steps=200, end_lr_ratio=0.1)
    return cfg


def import_hf(folder: str | Path, workdir: str | Path, seq_len: int = 0, overrides: Sequence[str] = ()) -> Path:
    """Write a lexi run directory for the Hugging Face model in `folder`. `overrides`
    (`--config.mesh.shape.fsdp=8`, ...) apply to the run's config before any weight is read,
    so the mesh they give is where the tensors land."""
    from lexi.tokenizers.hf import HFTokenizer
    from lexi.train.new_run import write_initial_run
    from lexi.train.setup_run import assemble

    folder = Path(folder).expanduser()
    hf = read_config(folder)
    lexi_model = arch.to_lexi(hf)  # refuses unsupported architectures before anything is read or written
    if not (folder / "tokenizer.json").exists():
        raise UserError(f"{folder} has no tokenizer.json; write one with transformers: "
                        "AutoTokenizer.from_pretrained(folder).save_pretrained(folder)")
    ckpt = Checkpoint(folder)
    tok = HFTokenizer(folder / "tokenizer.json")
    rows = arch.vocab_rows(hf)
    if tok.vocab_size > rows:
        raise UserError(f"the tokenizer has {tok.vocab_size} ids but the model only {rows} embedding rows")
    if tok.vocab_size < rows:  # rows no token can produce: dropping them renormalises over real tokens
        log.warning("the model has %d embedding rows, the tokenizer %d ids: keeping the first %d rows",
                    rows, tok.vocab_size, tok.vocab_size)
    cfg = run_config(*lexi_model, tok.vocab_size)
    if seq_len:
        cfg.data.seq_len = int(seq_len)
    apply_overrides(cfg, overrides)
    validate(cfg)
    window = arch.attention_window(hf)
    if window and cfg.data.seq_len > window:
        raise UserError(f"data.seq_len {cfg.data.seq_len} is longer than the model's sliding_window ({window}), which "
                        "lexi's attention does not have; use --seq-len of at most the window")
    model = dict(cfg.model)
    views = list(arch.import_views(hf, model, cfg.embedding.tied, arch.body_prefix(hf, ckpt.names())))
    missing = sorted({name for _, name, _ in views if name not in ckpt})
    if missing:
        raise UserError(f"{folder}: the checkpoint lacks {len(missing)} tensor(s) the {hf.get('model_type')} "
                        f"architecture needs, e.g. {missing[:3]}")
    used = {name for _, name, _ in views}
    unused = sorted(n for n in ckpt.names() if n not in used and not n.endswith(IGNORED)
                    and not (cfg.embedding.tied and n == "lm_head.weight"))
    if unused:  # weights lexi would drop: a part of the architecture lexi does not have
        raise UserError(f"{folder}: {len(unused)} tensor(s) have no place in lexi's {hf.get('model_type')} model, "
                        f"e.g. {unused[:3]}; nothing was written")

    def source(path, name) -> np.ndarray:  # a view in lexi's layout: nothing is read yet
        src = view_of[path](ckpt.view(name))
        return src[:tok.vocab_size] if path[-1] in ("table", "head") else src

    view_of = {path: view for path, _, view in views}
    want = assemble(cfg, tok.vocab_size, tuple(tok.special_ids)).abstract_state.params
    for path, name, _ in views:  # every shape is checked before anything is written
        if tuple(source(path, name).shape) != tuple(_at(want, path).shape):
            raise UserError(f"tensor {name} has shape {ckpt.view(name).shape}, which does not fit lexi's "
                            f"{'/'.join(path)} {tuple(_at(want, path).shape)}; is config.json the one these "
                            "weights came with? Nothing was written")

    def place(run) -> Any:
        out: dict = {}
        for path, name, _ in views:
            src = source(path, name)
            read = lambda idx, src=src: np.asarray(src[idx], np.float32)  # this device's block only
            _put(out, path, jax.make_array_from_callback(src.shape, _at(run.state_shardings.params, path), read))
        return out

    record = {"source": str(folder.absolute()), "config": hf}
    return write_initial_run(cfg, tok, workdir, place, {IMPORT_RECORD: record})


def export_hf(workdir: str | Path, out: str | Path, max_shard_bytes: int = 5 << 30) -> Path:
    """Write the run's newest parameters as a Hugging Face model folder."""
    from lexi.inference import load_for_inference
    from lexi.tokenizers.hf import HFTokenizer, token_ids

    workdir, out = Path(workdir), Path(out).expanduser()
    if not (workdir / "config.json").exists():
        raise UserError(f"{workdir} is not a lexi run directory (no config.json)")
    cfg = json.loads((workdir / "config.json").read_text())
    model, emb = dict(cfg["model"]), dict(cfg["embedding"])
    fam = arch.export_family(model, emb)  # before loading anything
    loaded = load_for_inference(workdir)
    tok = loaded.tokenizer
    if not isinstance(tok, HFTokenizer):
        raise UserError(f"the run's tokenizer is lexi's {tok.name!r} kind, which Hugging Face tools cannot read; "
                        "export needs a tokenizer.json tokenizer (import one with `lexi import-hf`, or move the "
                        "model to one with `lexi zett transfer --tokenizer path/tokenizer.json`)")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new --out folder")
    record = workdir / IMPORT_RECORD
    source = json.loads(record.read_text())["config"] if record.exists() else None
    model = dataclasses.asdict(loaded.model.backbone)  # head_dim resolved
    special = {"bos": tok.bos_id, "eos": tok.eos_id, "pad": tok.pad_id}
    hf, tied = arch.to_hf(model, emb, tok.vocab_size, special, source)
    scale = readout_scale(emb.get("logit_scale", 0.0), model["d_model"])
    params = loaded.params

    def get(path) -> np.ndarray:  # the whole array on this host, also when other processes hold parts of it
        a = _at(params, path)
        if not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            a = multihost_utils.process_allgather(a, tiled=True)
        return np.asarray(jax.device_get(a), np.float32)

    tensors = dict(arch.export_tensors(fam, model, params, tied, scale, get))
    if jax.process_index() != 0:  # every process gathered; process 0 writes
        return out
    out.mkdir(parents=True, exist_ok=True)
    write(tensors, out, max_shard_bytes)
    (out / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n")
    (out / "tokenizer.json").write_bytes(tok.raw)
    name_of = {i: text for text, i in token_ids(tok.data).items()}
    roles = (("bos", tok.bos_id), ("eos", tok.eos_id), ("pad", tok.pad_id), ("unk", tok.unk_id))
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(cfg["data"]["seq_len"]),
               **{f"{r}_token": name_of[i] for r, i in roles if i in name_of}}
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2, sort_keys=True) + "\n")
    return out


def _at(tree: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def _put(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value
