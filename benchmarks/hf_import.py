"""Time and host memory of `lexi import-hf` on a Llama-shaped checkpoint made here.

    python benchmarks/hf_import.py [--layers 12] [--width 768] [--vocab 32000] [--shard-mb 200]

Writes a random bfloat16 Llama checkpoint (sharded safetensors + index, lexi's own writer,
no torch) and a tokenizer.json, then imports it in a fresh process and prints: the
checkpoint size, the import time, and that process's peak resident memory beside what the
run itself must hold (float32 parameters + AdamW's two zero slots, all in host memory on a
CPU "device"). The parameters are read from memory-mapped files one tensor at a time,
each device its own slice, so the peak stays near that floor instead of adding a copy of
the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ml_dtypes
import numpy as np


def write_checkpoint(folder: Path, layers: int, d: int, vocab: int, shard_bytes: int) -> tuple[int, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from lexi.hf.safetensors import write

    heads, kv, mlp = d // 64, max(d // 256, 1), int(d * 8 / 3) // 64 * 64
    rng = np.random.default_rng(0)
    bf16 = ml_dtypes.bfloat16
    rand = lambda *shape: (0.02 * rng.standard_normal(shape, np.float32)).astype(bf16)
    tensors = {"model.embed_tokens.weight": rand(vocab, d), "lm_head.weight": rand(vocab, d),
               "model.norm.weight": np.ones(d, bf16)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": np.ones(d, bf16), p + "post_attention_layernorm.weight": np.ones(d, bf16),
            p + "self_attn.q_proj.weight": rand(d, d), p + "self_attn.k_proj.weight": rand(kv * 64, d),
            p + "self_attn.v_proj.weight": rand(kv * 64, d), p + "self_attn.o_proj.weight": rand(d, d),
            p + "mlp.gate_proj.weight": rand(mlp, d), p + "mlp.up_proj.weight": rand(mlp, d),
            p + "mlp.down_proj.weight": rand(d, mlp)})
    folder.mkdir(parents=True)
    write(tensors, folder, shard_bytes)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": d,
              "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
              "intermediate_size": mlp, "vocab_size": vocab, "max_position_embeddings": 2048,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False}
    (folder / "config.json").write_text(json.dumps(config))
    pieces = {"<s>": 0, "</s>": 1, **{f"p{i}": i + 2 for i in range(vocab - 2)}}
    tok = Tokenizer(models.WordLevel(pieces, unk_token="</s>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    n_params = sum(a.size for a in tensors.values())
    return n_params, sum(a.nbytes for a in tensors.values())


IMPORT = """
import resource, sys, time
import jax
from lexi.hf.convert import import_hf
jax.devices()
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before, t = rss(), time.perf_counter()
import_hf(sys.argv[1], sys.argv[2], seq_len=128)
print(time.perf_counter() - t, before, rss())
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--shard-mb", type=int, default=200)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hf"
        n, nbytes = write_checkpoint(folder, a.layers, a.width, a.vocab, a.shard_mb << 20)
        shards = len(list(folder.glob("*.safetensors")))
        out = subprocess.run([sys.executable, "-c", IMPORT, str(folder), str(Path(tmp) / "run")],
                             capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        seconds, before, peak = map(float, out.stdout.split()[-3:])
    gib = 1 << 30
    state = n * 4 * 3  # float32 parameters + AdamW mu and nu
    grew = peak - before
    print(f"checkpoint: {n / 1e6:.1f}M parameters, {nbytes / gib:.2f} GiB bfloat16 in {shards} shards")
    print(f"import: {seconds:.1f} s; peak resident memory grew by {grew / gib:.2f} GiB "
          f"(from {before / gib:.2f} GiB with JAX loaded)")
    print(f"the run's own state (float32 parameters + 2 AdamW slots): {state / gib:.2f} GiB; "
          f"growth / state = {grew / state:.2f}; beyond the state: {(grew - state) / gib:.2f} GiB "
          f"(the checkpoint itself is {nbytes / gib:.2f} GiB)")


if __name__ == "__main__":
    main()
