"""Lexinvariant LM (Huang et al. 2023): fresh N(0, I) token vectors per sequence, tied readout.

Variants (same backbones as configs/standard.py, so each has a standard twin; times
measured on the project's 2-core x86-64 CPU, nothing else running):
  tiny        lexi train --config configs/lexinvariant.py:tiny --workdir runs/lexi
              2 layers, width 64, ASCII characters, KJV, context 128, batch 16, 300 steps;
              2-core CPU, 31 s; training loss 4.52 nats/char (uniform: 4.85), validation 4.52;
              on validation sequences 4.90 nats/char in the first 16 positions and 4.42 in
              the last 16 (`lexi eval --workdir runs/lexi --suite perplexity`).
  demo        the lexinvariant half of `lexi demo`: batch 32, 1200 steps, lr 1e-2; 2-core
              CPU, about 5 minutes; 4.94 nats/char early in the context, 4.02 late;
              cipher / plain loss 1.003.
  small_char  (alias small) lexi train --config configs/lexinvariant.py:small --workdir runs/lx_small
              4 layers, width 256, context 256, batch 32, 300 steps, lr 5e-3; 2-core CPU,
              21 minutes (1,244 s); validation loss 4.18 nats/char; `lexi eval` (64
              sequences, probe 300 steps): 4.71 nats/char in the first 32 positions, 4.13 in
              the last 32, cipher / plain loss 0.998 (its standard twin: 2.35).
  medium      lexi train --config configs/lexinvariant.py:medium --workdir runs/lx_medium
              4 layers, width 128, 4 heads x 32, MLP 512, context 256, batch 32, 2400 steps
              (19.7M tokens), lr 1e-2; 2-core CPU with the process pinned to one core
              (`taskset -c 1`) while its standard twin ran on the other: 96 minutes;
              training loss 3.86 nats/char, validation 3.87; `lexi eval` (100 windows, the
              suite of 2026-11): 4.34 nats/char early in the context, 3.77 late, cipher / plain
              1.000, key precision 0.000 (the paper's 0.996 needs far longer training).
  cpu         taskset -c 0 lexi train --config configs/lexinvariant.py:cpu --workdir runs/lx_cpu
              medium with the two levers the study found: the train split's 65 characters
              + 4 specials (tokenizer kind corpus_chars) and 4 heads x 64, 2400 steps (19.7M
              characters), lr 1e-2; pinned to one core while the standard twin ran on the
              other: 120 minutes; validation loss 3.514 nats/char. `python
              benchmarks/cpu_pair.py` (evaluation seed 1, 6 min): 3.87 nats/char early in the
              context, 3.45 late (in-context bigram counter 2.77: not copying yet), cipher /
              plain 0.999, key precision 0.091 by assignment (frequency analysis 0.121),
              LookUp 0.005 (README "The cpu character-level pair").
  small_32k   the same backbone over a 32k SentencePiece vocabulary trained on the corpus,
              the readout in online chunks of 2048 (never B x V x d). Not run yet.
  Levers, each a config field whose default is the paper's choice. Measured one at a time
  on the medium shape at 4.1M characters (`python benchmarks/lexinvariant_ablation.py`,
  benchmarks/RESULTS.md): --config.embedding.init_scale=signs, --config.model.relpos_per_layer=true,
  --config.model.head_dim=64, --config.data.tokenizer.kind=corpus_chars (the two that
  helped), --config.train.schedule=constant, --config.data.corpus=mixture
  --config.data.mixture=kjv:0.8,python_code:0.2, --config.data.repeat_share=0.5,
  --config.data.seq_len=512, --config.embedding.init_scale=constant.
  paper_char  (alias paper) the paper's 150M model: 12 layers, 8 heads x 128, MLP 4096,
              T5 bias, Adafactor cosine 0.01 -> 0.001, 1000 warmup, sequence 512, batch 64,
              250k steps, bf16 compute; the paper used one TPU v3-8 for about 23 hours.
              Not trained here. `lexi compile --config configs/lexinvariant.py:paper
              --topology v3:2x2` (2-core CPU, 2 minutes): 151.0M parameters, 2.24 GiB per
              v3 core of 16 (data parallel over 8), 3.10e13 model FLOPs per step.
  paper_32k   the same over 32k SentencePiece pieces (T5's with
              --config.data.tokenizer.model_file=.../spiece.model). Not run here.
  paper_1b    the paper's recipe at 1.0B parameters for a pod: 20 layers, width 2048, 16
              heads x 128, MLP 8192, 32k pieces, context 2048, batch 256, scanned layers,
              full remat, FSDP over every device. Not trained here.
              `lexi compile --config configs/lexinvariant.py:paper_1b --topology v5e:16x16`
              (2-core CPU, about 1.5 minutes): 1,006.7M parameters, 2.78 GiB per v5e chip
              of 16 on a v5e-256 (12.51 GiB with --config.model.remat=none), 3.64e15 model
              FLOPs per step (docs/scaling.md).
"""
from lexi.config import base_config
from lexi.presets import (apply_cpu_shape, apply_medium_shape, apply_paper_shape, apply_small_shape,
                          apply_tiny_shape, demo_config)

# the variants after the colon (docs/configs.md is generated from them)
VARIANTS = ("tiny", "demo", "small_char", "small_32k", "medium", "cpu", "paper_char", "paper_32k", "paper_1b")


def get_config(variant: str = "tiny"):
    c = base_config()
    c.embedding = {
        "kind": "lexinvariant",
        "generator": "hash",  # counter-based Gaussian rows; "threefry" = jax.random reference
        "readout_chunk": 0,  # 0 = materialise the per-sequence matrix (fine for 128 characters)
        "learn_temperature": True,  # readout logits = t * h . E^T, t starts at 1/sqrt(d)
        "init_scale": "ones",  # the input scale starts at: ones (the paper) | signs (random +-1) | constant
        "init_scale_value": 1.0,  # init_scale=constant: the starting value
    }
    variant = {"small": "small_char", "paper": "paper_char"}.get(variant, variant)
    if variant == "tiny":
        apply_tiny_shape(c)
    elif variant == "demo":
        return demo_config("lexinvariant")  # exactly what `lexi demo` trains
    elif variant in ("small_char", "small_32k"):
        apply_small_shape(c)
        c.train.lr = 5e-3  # lexinvariant models tolerate and need a larger step than their twins
        if variant == "small_32k":
            c.data.tokenizer.update(kind="sentencepiece", vocab_size=32000, model_type="unigram")
            c.embedding.readout_chunk = 2048
    elif variant in ("medium", "medium_char"):
        apply_medium_shape(c)
        c.train.lr = 1e-2  # measured on tiny shapes: leaves the in-context-unigram plateau sooner
    elif variant == "cpu":
        apply_cpu_shape(c)
        c.train.lr = 1e-2  # as medium
    elif variant in ("paper_char", "paper_32k"):
        apply_paper_shape(c, vocab_32k=variant == "paper_32k")
    elif variant == "paper_1b":
        apply_paper_shape(c, vocab_32k=True)
        c.model.update(num_layers=20, d_model=2048, num_heads=16, head_dim=128, mlp_dim=8192, scan_layers=True,
                       remat="full")  # 3.2 GiB per v5e chip instead of 14.9 (lexi compile)
        c.data.seq_len = 2048
        c.train.batch_size = 256
        c.mesh.shape.update(data=1, fsdp=-1, tensor=1)  # parameters and optimizer sharded over every chip
    else:
        raise ValueError(f"unknown variant {variant!r}: tiny, demo, small_char, small_32k, medium, cpu, paper_char, "
                         "paper_32k, paper_1b")
    return c
