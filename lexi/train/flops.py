"""Analytic FLOP counts, for MFU.

MFU = (tokens per second x training FLOPs per token) / peak FLOP/s of the devices used.
Training FLOPs per token = 3 x forward (the backward pass costs two forwards). The
forward counts every matmul (2 FLOPs per multiply-add): attention projections, MLP,
the readout (over the full vocabulary, or the rows a restricted readout keeps, its
`readout_rows`), and attention scores and values with the causal mask halving them (as
MaxText counts). Embedding lookups, norms, softmax, random number generation and
rematerialisation are not counted: MFU measures useful model work only.
"""
from __future__ import annotations

from lexi.model.config import BackboneConfig


def forward_flops_per_token(cfg: BackboneConfig, vocab_size: int, seq_len: int) -> float:
    d, n, k, h = cfg.d_model, cfg.num_heads, cfg.kv_heads, cfg.head_dim
    projections = 2 * d * (n * h + 2 * k * h) + 2 * n * h * d
    mlp = 2 * d * cfg.mlp_dim * (3 if cfg.activation == "swiglu" else 2)
    scores = 2 * 2 * n * h * seq_len / 2  # QK^T and AV, causal: each query sees half the keys on average
    readout = 2 * d * vocab_size
    return cfg.num_layers * (projections + mlp + scores) + readout


def train_flops_per_token(cfg: BackboneConfig, vocab_size: int, seq_len: int) -> float:
    return 3.0 * forward_flops_per_token(cfg, vocab_size, seq_len)


def param_count(params) -> int:
    import jax

    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
