"""Backbone hyper-parameters as a frozen dataclass, checked once when a run starts."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from lexi.errors import UserError

POSITIONS = ("t5_bias", "rope", "learned", "none")
ROPE_SCALINGS = ("none", "linear", "llama3", "yarn")
ACTIVATIONS = ("gelu", "swiglu", "relu")
NORMS = ("rmsnorm", "layernorm")
REMAT = ("none", "full", "dots", "dots_no_batch")


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """Shape and numerics of the decoder-only Transformer shared by every family."""

    num_layers: int = 2  # Transformer blocks
    d_model: int = 64  # residual stream width
    num_heads: int = 4  # query heads
    head_dim: int = 0  # 0 = d_model // num_heads (which must then divide d_model)
    num_kv_heads: int = 0  # 0 = num_heads (plain multi-head); fewer = grouped-query attention.
    mlp_dim: int = 256  # MLP hidden width
    activation: str = "gelu"  # gelu | swiglu | relu
    norm: str = "rmsnorm"  # rmsnorm | layernorm, before each sub-layer and at the end
    norm_eps: float = 1e-6  # added to the variance inside the norm
    dropout: float = 0.0  # on attention and MLP outputs, training only
    position: str = "t5_bias"  # t5_bias (relative buckets) | rope | learned | none
    max_len: int = 2048  # learned absolute positions: table rows; otherwise only recorded (export-hf writes it)
    rope_theta: float = 10_000.0  # RoPE base wavelength
    # RoPE frequency scaling of long-context models (lexi/model/positions.py rope_frequencies):
    # none | linear (positions / factor) | llama3 (Llama 3.1's banded rescale) | yarn (YaRN)
    rope_scaling: str = "none"
    rope_factor: float = 1.0  # linear, llama3, yarn: the context extension factor
    rope_original_max_len: int = 0  # llama3, yarn: the pre-extension context length
    rope_low_freq_factor: float = 1.0  # llama3: wavelengths above original_max_len / this are divided by factor
    rope_high_freq_factor: float = 4.0  # llama3: wavelengths below original_max_len / this are kept
    rope_beta_fast: float = 32.0  # yarn: rotations where the ramp from extrapolation starts
    rope_beta_slow: float = 1.0  # yarn: rotations where the ramp to interpolation ends
    rope_attention_factor: float = 0.0  # yarn: scale on cos/sin; 0 = 0.1 ln(factor) + 1
    relpos_buckets: int = 32  # T5 relative position bias
    relpos_max_distance: int = 128  # T5 bias: distances beyond this share the last bucket
    relpos_per_layer: bool = False  # T5 bias: a table per layer (num_heads x layers profiles) instead of T5's one
    use_bias: bool = False  # biases in every Dense layer (GPT-2 style)
    qkv_bias: bool = False  # biases on the query, key and value projections only (Qwen2 style)
    dtype: str = "float32"  # compute dtype; parameters stay float32
    remat: str = "none"  # what the backward pass recomputes: none | full (each layer) | dots | dots_no_batch
    scan_layers: bool = False  # one compiled layer body scanned over depth (compile time independent of depth)
    # auto: cuDNN's fused kernel through jax.nn.dot_product_attention on GPUs, lexi's einsum attention
    # (lexi/ops/attention.py) elsewhere; xla / cudnn: jax.nn.dot_product_attention with that implementation
    attention_impl: str = "auto"  # "auto" | "einsum" | "xla" | "cudnn"
    attention_blocks: int = 4  # einsum attention: causal query blocks (1 = full L x L scores)

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def compute_dtype(self) -> Any:
        return jnp.dtype(self.dtype)

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"config.model has unknown field(s) {unknown}; valid fields: {sorted(known)}")
        cfg = cls(**d)
        if cfg.head_dim == 0:
            if cfg.num_heads <= 0 or cfg.d_model % cfg.num_heads:
                raise UserError(
                    f"config.model: num_heads ({cfg.num_heads}) must divide d_model ({cfg.d_model}) "
                    "when head_dim is 0; set head_dim explicitly or change num_heads")
            cfg = dataclasses.replace(cfg, head_dim=cfg.d_model // cfg.num_heads)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise UserError(f"config.model: {msg}")

        for name in ("num_layers", "d_model", "num_heads", "head_dim", "mlp_dim"):
            need(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        need(self.num_heads % self.kv_heads == 0,
             f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.kv_heads})")
        need(self.position in POSITIONS, f"position must be one of {POSITIONS}, got {self.position!r}")
        need(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        need(self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}")
        need(self.rope_scaling in ROPE_SCALINGS,
             f"rope_scaling must be one of {ROPE_SCALINGS}, got {self.rope_scaling!r}")
        if self.rope_scaling != "none":
            need(self.rope_factor >= 1.0, f"rope_factor must be >= 1 with rope_scaling, got {self.rope_factor}")
        if self.rope_scaling in ("llama3", "yarn"):
            need(self.rope_original_max_len > 0,
                 f"rope_scaling {self.rope_scaling!r} needs rope_original_max_len (the pre-extension context)")
        if self.rope_scaling == "llama3":
            need(self.rope_high_freq_factor > self.rope_low_freq_factor,
                 "rope_high_freq_factor must be larger than rope_low_freq_factor")
        need(self.remat in REMAT, f"remat must be one of {REMAT}, got {self.remat!r}")
        need(self.dtype in ("float32", "bfloat16", "float16"), f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.attention_impl in ("auto", "einsum", "xla", "cudnn"),
             f"attention_impl must be auto, einsum, xla or cudnn, got {self.attention_impl!r}")
        need(self.attention_blocks >= 1, f"attention_blocks must be >= 1, got {self.attention_blocks}")
