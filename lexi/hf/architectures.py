"""Hugging Face architectures lexi's backbone can hold, and how their tensors map onto it.

Two families cover Llama, Mistral, Qwen2 and GPT-2:
  llama  (model_type llama | mistral | qwen2): RMSNorm, SwiGLU, RoPE (with linear, llama3
         or YaRN scaling), grouped-query attention, untied or tied head, Qwen2's q/k/v biases.
  gpt2   LayerNorm, tanh GELU, learned absolute positions, biases everywhere, tied head.

`to_lexi(hf_config)` gives lexi's model and embedding config sections, `to_hf(...)` the
reverse; `import_views(...)` says, per lexi parameter, which HF tensor holds it and how to
view it in lexi's layout (reshapes and transposes that numpy does without copying, so a
memory-mapped checkpoint is read only where a device needs it); `export_tensors(...)`
builds the HF tensors from lexi's parameters. Anything lexi cannot reproduce exactly stops
with a UserError naming the option.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from lexi.embeddings.trainable import readout_scale
from lexi.errors import UserError

LLAMA_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
GPT2_TYPES = {"gpt2": "GPT2LMHeadModel"}
SUPPORTED = sorted([*LLAMA_TYPES, *GPT2_TYPES])
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
MAX_SEQ_LEN = 2048  # the imported run's data.seq_len is at most this (and the model's own limit)

View = Callable[[np.ndarray], np.ndarray]  # HF layout -> lexi layout


def family(hf: dict) -> str:
    kind = hf.get("model_type")
    if kind in LLAMA_TYPES:
        return "llama"
    if kind in GPT2_TYPES:
        return "gpt2"
    raise UserError(f"model_type {kind!r} ({', '.join(hf.get('architectures') or []) or 'no architectures'}) "
                    f"is not supported; lexi imports {', '.join(SUPPORTED)}")


def _refuse(what: str, hf: dict) -> None:
    raise UserError(f"{hf.get('model_type')} option {what} is not supported by lexi's backbone, so the imported "
                    "model would compute something else; nothing was written")


def _rope(hf: dict) -> dict:
    """lexi's rope fields from `rope_parameters` (transformers 5) or `rope_theta`/`rope_scaling` (older)."""
    params = dict(hf.get("rope_parameters") or {})
    legacy = hf.get("rope_scaling") or {}
    params = {**legacy, **params}
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10_000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if float(params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))) != 1.0:
        _refuse("partial_rotary_factor (RoPE on part of each head)", hf)
    out = {"rope_theta": theta}
    if kind == "default":
        return out
    if kind not in ("linear", "llama3", "yarn"):
        _refuse(f"rope_type {kind!r} (lexi has default, linear, llama3, yarn)", hf)
    if kind == "yarn" and (params.get("mscale") or params.get("mscale_all_dim")):
        _refuse("yarn mscale / mscale_all_dim", hf)
    if kind == "yarn" and params.get("truncate") is False:
        _refuse("yarn truncate=false", hf)
    out.update(rope_scaling=kind, rope_factor=float(params["factor"]))
    if kind in ("llama3", "yarn"):
        out["rope_original_max_len"] = int(params.get("original_max_position_embeddings")
                                           or hf["max_position_embeddings"])
    if kind == "llama3":
        out.update(rope_low_freq_factor=float(params["low_freq_factor"]),
                   rope_high_freq_factor=float(params["high_freq_factor"]))
    if kind == "yarn":
        out.update(rope_beta_fast=float(params.get("beta_fast") or 32),
                   rope_beta_slow=float(params.get("beta_slow") or 1),
                   rope_attention_factor=float(params.get("attention_factor") or 0.0))
    return out


def to_lexi(hf: dict) -> tuple[dict, dict, int]:
    """(config.model fields, config.embedding fields, longest usable context) for a HF config.json."""
    fam = family(hf)
    emb = {"kind": "trainable", "logit_scale": 1.0, "readout_chunk": 0}
    if fam == "llama":
        d, n = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        if hf.get("hidden_act", "silu") != "silu":
            _refuse(f"hidden_act {hf.get('hidden_act')!r} (the llama family needs silu, i.e. SwiGLU)", hf)
        attn_bias, mlp_bias = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
        if attn_bias != mlp_bias:
            _refuse("attention_bias without mlp_bias (or the reverse)", hf)
        if hf.get("model_type") == "qwen2" and hf.get("use_sliding_window"):
            _refuse("use_sliding_window", hf)
        model = {
            "num_layers": int(hf["num_hidden_layers"]), "d_model": d, "num_heads": n,
            "head_dim": int(hf.get("head_dim") or d // n), "num_kv_heads": int(hf.get("num_key_value_heads") or n),
            "mlp_dim": int(hf["intermediate_size"]), "activation": "swiglu", "norm": "rmsnorm",
            "norm_eps": float(hf.get("rms_norm_eps", 1e-6)), "position": "rope",
            "max_len": int(hf.get("max_position_embeddings", MAX_SEQ_LEN)),
            "use_bias": attn_bias, "qkv_bias": hf.get("model_type") == "qwen2", **_rope(hf),
        }
        emb["tied"] = bool(hf.get("tie_word_embeddings", False))
        context = min(model["max_len"], attention_window(hf) or model["max_len"])
    else:
        d = int(hf["n_embd"])
        if hf.get("activation_function", "gelu_new") not in TANH_GELUS:
            _refuse(f"activation_function {hf.get('activation_function')!r} (lexi's GELU is the tanh form)", hf)
        if hf.get("scale_attn_by_inverse_layer_idx"):
            _refuse("scale_attn_by_inverse_layer_idx", hf)
        if hf.get("scale_attn_weights") is False:
            _refuse("scale_attn_weights=false", hf)
        model = {
            "num_layers": int(hf["n_layer"]), "d_model": d, "num_heads": int(hf["n_head"]),
            "head_dim": d // int(hf["n_head"]),
            "num_kv_heads": 0, "mlp_dim": int(hf.get("n_inner") or 4 * d), "activation": "gelu", "norm": "layernorm",
            "norm_eps": float(hf.get("layer_norm_epsilon", 1e-5)), "position": "learned",
            "max_len": int(hf.get("n_positions", 1024)), "use_bias": True, "qkv_bias": False,
        }
        emb["tied"] = bool(hf.get("tie_word_embeddings", True))
        context = model["max_len"]
    return model, emb, min(context, MAX_SEQ_LEN)


def attention_window(hf: dict) -> int | None:
    """Mistral's sliding window: lexi attends to the whole context, which equals the model
    only on contexts up to the window."""
    window = hf.get("sliding_window") if hf.get("model_type") == "mistral" else None
    return int(window) if window else None


def vocab_rows(hf: dict) -> int:
    return int(hf["vocab_size"])


# ---- tensors, HF -> lexi ------------------------------------------------------------------

def _t(w):  # [out, in] (torch Linear) -> [in, out]
    return w.T


def _same(w):
    return w


def _heads_in(n: int, h: int) -> View:  # Linear [n*h, d] -> kernel [d, n, h]
    return lambda w: w.T.reshape(w.shape[1], n, h)


def _heads_bias(n: int, h: int) -> View:  # [n*h] -> [n, h]
    return lambda b: b.reshape(n, h)


def _heads_out(n: int, h: int) -> View:  # Linear [d, n*h] -> kernel [n, h, d]
    return lambda w: w.T.reshape(n, h, w.shape[0])


def _part(i: int, n: int, h: int, bias: bool = False) -> View:  # GPT-2 c_attn [d, 3d] -> q | k | v
    if bias:
        return lambda b: b[i * n * h:(i + 1) * n * h].reshape(n, h)
    return lambda w: w[:, i * n * h:(i + 1) * n * h].reshape(w.shape[0], n, h)


def import_views(hf: dict, model: dict, tied: bool, prefix: str) -> Iterator[tuple[tuple[str, ...], str, View]]:
    """(lexi parameter path, HF tensor name, view) for every parameter of the imported model.
    `prefix` is what the checkpoint puts before the body's names ("model." for Llama, "" or
    "transformer." for GPT-2)."""
    n, k, h = model["num_heads"], model["num_kv_heads"] or model["num_heads"], model["head_dim"]
    bias = model["use_bias"]
    if family(hf) == "llama":
        yield ("embedding", "table"), f"{prefix}embed_tokens.weight", _same
        if not tied:
            yield ("embedding", "head"), "lm_head.weight", _same
        yield ("body", "final_norm", "scale"), f"{prefix}norm.weight", _same
        for i in range(model["num_layers"]):
            src, dst = f"{prefix}layers.{i}.", ("body", f"layer_{i}")
            yield (*dst, "attn_norm", "scale"), src + "input_layernorm.weight", _same
            yield (*dst, "mlp_norm", "scale"), src + "post_attention_layernorm.weight", _same
            for name, heads, proj in (("query", n, "q_proj"), ("key", k, "k_proj"), ("value", k, "v_proj")):
                yield (*dst, "attn", name, "kernel"), f"{src}self_attn.{proj}.weight", _heads_in(heads, h)
                if bias or model["qkv_bias"]:
                    yield (*dst, "attn", name, "bias"), f"{src}self_attn.{proj}.bias", _heads_bias(heads, h)
            yield (*dst, "attn", "out", "kernel"), src + "self_attn.o_proj.weight", _heads_out(n, h)
            for name, proj in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                yield (*dst, "mlp", name, "kernel"), f"{src}mlp.{proj}.weight", _t
            if bias:
                yield (*dst, "attn", "out", "bias"), src + "self_attn.o_proj.bias", _same
                for name, proj in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                    yield (*dst, "mlp", name, "bias"), f"{src}mlp.{proj}.bias", _same
        return
    yield ("embedding", "table"), f"{prefix}wte.weight", _same
    if not tied:
        yield ("embedding", "head"), "lm_head.weight", _same
    yield ("body", "positions", "pos_embedding"), f"{prefix}wpe.weight", _same
    yield ("body", "final_norm", "scale"), f"{prefix}ln_f.weight", _same
    yield ("body", "final_norm", "bias"), f"{prefix}ln_f.bias", _same
    for i in range(model["num_layers"]):
        src, dst = f"{prefix}h.{i}.", ("body", f"layer_{i}")
        for norm, ln in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2")):
            yield (*dst, norm, "scale"), f"{src}{ln}.weight", _same
            yield (*dst, norm, "bias"), f"{src}{ln}.bias", _same
        for j, name in enumerate(("query", "key", "value")):
            yield (*dst, "attn", name, "kernel"), src + "attn.c_attn.weight", _part(j, n, h)
            yield (*dst, "attn", name, "bias"), src + "attn.c_attn.bias", _part(j, n, h, bias=True)
        yield (*dst, "attn", "out", "kernel"), src + "attn.c_proj.weight", lambda w: w.reshape(n, h, w.shape[1])
        yield (*dst, "attn", "out", "bias"), src + "attn.c_proj.bias", _same
        for name, proj in (("up", "c_fc"), ("down", "c_proj")):  # Conv1D weights are already [in, out]
            yield (*dst, "mlp", name, "kernel"), f"{src}mlp.{proj}.weight", _same
            yield (*dst, "mlp", name, "bias"), f"{src}mlp.{proj}.bias", _same


def body_prefix(hf: dict, names: list[str]) -> str:
    """Where the body's tensors sit in this checkpoint (a base model saves them without the
    task head's prefix)."""
    first = "embed_tokens.weight" if family(hf) == "llama" else "wte.weight"
    for p in ("model.", "transformer.", ""):
        if p + first in names:
            return p
    raise UserError(f"the checkpoint has no {first} (looked for model.{first}, transformer.{first}, {first}); "
                    "is it a decoder-only language model?")


# ---- lexi -> HF ---------------------------------------------------------------------------

def export_family(model: dict, emb: dict) -> str:
    """Which HF family a lexi model maps onto, or a UserError naming what does not map."""
    if emb.get("kind", "trainable") != "trainable":
        raise UserError(f"embedding kind {emb.get('kind')!r} has no Hugging Face equivalent (its rows are not a "
                        "fixed table); only trainable-embedding models export")
    if emb.get("readout_ids", "all") != "all":
        raise UserError(f"this model reads out only the ids its training split uses (readout_ids="
                        f"{emb['readout_ids']!r}); a Hugging Face lm_head scores the whole vocabulary")
    llama = dict(activation="swiglu", norm="rmsnorm", position="rope")
    gpt2 = dict(activation="gelu", norm="layernorm", position="learned", use_bias=True, qkv_bias=False)
    for name, need in (("llama", llama), ("gpt2", gpt2)):
        if all(model.get(k) == v for k, v in need.items()):
            if name == "gpt2" and model.get("num_kv_heads") not in (0, model["num_heads"]):
                break
            if name == "gpt2" and model["head_dim"] * model["num_heads"] != model["d_model"]:
                break
            return name
    raise UserError(
        "this model does not map onto a Hugging Face architecture: exportable are "
        "(swiglu, rmsnorm, rope) as Llama/Qwen2 and (gelu, layernorm, learned, use_bias) as GPT-2; it has "
        f"activation={model.get('activation')}, norm={model.get('norm')}, position={model.get('position')}, "
        f"use_bias={model.get('use_bias')}")


def to_hf(model: dict, emb: dict, vocab_size: int, special: dict, source: dict | None) -> tuple[dict, bool]:
    """(config.json, tied) for a lexi model. `source` is the imported model's own config.json,
    whose other fields (names, dtype, generation ids) are kept."""
    fam = export_family(model, emb)
    scale = readout_scale(emb.get("logit_scale", 0.0), model["d_model"])
    tied = bool(emb.get("tied", True)) and scale == 1.0  # a scaled tied readout becomes an untied head
    ids = {f"{r}_token_id": special[r] for r in ("bos", "eos", "pad") if special.get(r) is not None}
    base = dict(source or {})
    for stale in ("rope_scaling", "rope_parameters", "torch_dtype", "dtype"):
        base.pop(stale, None)
    if fam == "llama":
        kind = base.get("model_type") if base.get("model_type") in LLAMA_TYPES else (
            "qwen2" if model.get("qkv_bias") else "llama")
        if model.get("qkv_bias") and kind != "qwen2":
            raise UserError("q/k/v biases alone (qkv_bias) export only as Qwen2")
        cfg = {**base, "model_type": kind, "architectures": [LLAMA_TYPES[kind]],
               "hidden_size": model["d_model"], "num_hidden_layers": model["num_layers"],
               "num_attention_heads": model["num_heads"],
               "num_key_value_heads": model["num_kv_heads"] or model["num_heads"],
               "head_dim": model["head_dim"], "intermediate_size": model["mlp_dim"], "hidden_act": "silu",
               "rms_norm_eps": model["norm_eps"], "max_position_embeddings": model["max_len"],
               "rope_theta": model["rope_theta"], "rope_scaling": _rope_scaling(model)}
        # transformers 5 reads rope_parameters, older releases rope_theta and rope_scaling
        cfg["rope_parameters"] = {"rope_theta": model["rope_theta"],
                                  **(cfg["rope_scaling"] or {"rope_type": "default"})}
        if kind == "llama":
            cfg.update(attention_bias=bool(model["use_bias"]), mlp_bias=bool(model["use_bias"]))
        elif model["use_bias"]:
            raise UserError(f"{kind} has no biases outside q/k/v; this model has use_bias=true")
    else:
        cfg = {**base, "model_type": "gpt2", "architectures": [GPT2_TYPES["gpt2"]], "n_embd": model["d_model"],
               "n_layer": model["num_layers"], "n_head": model["num_heads"], "n_inner": model["mlp_dim"],
               "n_positions": model["max_len"], "layer_norm_epsilon": model["norm_eps"],
               "activation_function": "gelu_new"}
    cfg.update(vocab_size=vocab_size, tie_word_embeddings=tied, torch_dtype="float32", **ids)
    return cfg, tied


def _rope_scaling(model: dict) -> dict | None:
    kind = model.get("rope_scaling", "none")
    if kind == "none":
        return None
    out = {"rope_type": kind, "factor": model["rope_factor"]}
    if kind in ("llama3", "yarn"):
        out["original_max_position_embeddings"] = model["rope_original_max_len"]
    if kind == "llama3":
        out.update(low_freq_factor=model["rope_low_freq_factor"], high_freq_factor=model["rope_high_freq_factor"])
    if kind == "yarn":
        out.update(beta_fast=model["rope_beta_fast"], beta_slow=model["rope_beta_slow"])
        if model.get("rope_attention_factor"):
            out["attention_factor"] = model["rope_attention_factor"]
    return out


def export_tensors(fam: str, model: dict, params: Any, tied: bool, head_scale: float,
                   get: Callable[[tuple[str, ...]], np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, array) of every tensor; `get(path)` fetches one lexi parameter to the host.
    `head_scale` multiplies the readout rows (lexi's logit scale folded into an untied head)."""
    n, k, h, d = model["num_heads"], model["num_kv_heads"] or model["num_heads"], model["head_dim"], model["d_model"]
    bias = model["use_bias"]
    has_head = "head" in params["embedding"]
    head = lambda: head_scale * get(("embedding", "head" if has_head else "table"))
    if fam == "llama":
        yield "model.embed_tokens.weight", get(("embedding", "table"))
        if not tied:
            yield "lm_head.weight", head()
        yield "model.norm.weight", get(("body", "final_norm", "scale"))
        for i in range(model["num_layers"]):
            src, dst = ("body", f"layer_{i}"), f"model.layers.{i}."
            yield dst + "input_layernorm.weight", get((*src, "attn_norm", "scale"))
            yield dst + "post_attention_layernorm.weight", get((*src, "mlp_norm", "scale"))
            for name, heads, proj in (("query", n, "q_proj"), ("key", k, "k_proj"), ("value", k, "v_proj")):
                yield f"{dst}self_attn.{proj}.weight", get((*src, "attn", name, "kernel")).reshape(d, heads * h).T
                if bias or model["qkv_bias"]:
                    yield f"{dst}self_attn.{proj}.bias", get((*src, "attn", name, "bias")).reshape(heads * h)
            yield dst + "self_attn.o_proj.weight", get((*src, "attn", "out", "kernel")).reshape(n * h, d).T
            for name, proj in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                yield f"{dst}mlp.{proj}.weight", get((*src, "mlp", name, "kernel")).T
            if bias:
                yield dst + "self_attn.o_proj.bias", get((*src, "attn", "out", "bias"))
                for name, proj in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                    yield f"{dst}mlp.{proj}.bias", get((*src, "mlp", name, "bias"))
        return
    yield "transformer.wte.weight", get(("embedding", "table"))
    if not tied:
        yield "lm_head.weight", head()
    yield "transformer.wpe.weight", get(("body", "positions", "pos_embedding"))
    yield "transformer.ln_f.weight", get(("body", "final_norm", "scale"))
    yield "transformer.ln_f.bias", get(("body", "final_norm", "bias"))
    for i in range(model["num_layers"]):
        src, dst = ("body", f"layer_{i}"), f"transformer.h.{i}."
        for norm, ln in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2")):
            yield f"{dst}{ln}.weight", get((*src, norm, "scale"))
            yield f"{dst}{ln}.bias", get((*src, norm, "bias"))
        qkv = ("query", "key", "value")
        yield dst + "attn.c_attn.weight", np.concatenate(
            [get((*src, "attn", p, "kernel")).reshape(d, n * h) for p in qkv], axis=1)
        yield dst + "attn.c_attn.bias", np.concatenate([get((*src, "attn", p, "bias")).reshape(n * h) for p in qkv])
        yield dst + "attn.c_proj.weight", get((*src, "attn", "out", "kernel")).reshape(n * h, d)
        yield dst + "attn.c_proj.bias", get((*src, "attn", "out", "bias"))
        for name, proj in (("up", "c_fc"), ("down", "c_proj")):
            yield f"{dst}mlp.{proj}.weight", get((*src, "mlp", name, "kernel"))
            yield f"{dst}mlp.{proj}.bias", get((*src, "mlp", name, "bias"))
