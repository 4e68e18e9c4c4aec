"""Standard decoder LM with a learned, tied embedding table: the twin of every family.

Variants (times measured on the project's 2-core x86-64 CPU, nothing else running):
  tiny   lexi train --config configs/standard.py:tiny --workdir runs/std_tiny
         2 layers, width 64, ASCII characters, KJV, context 128, batch 16, 300 steps;
         2-core CPU, 31 s; training loss falls from 5.6 (step 10) to 2.21 nats/char,
         validation loss 2.25.
  demo   the standard half of `lexi demo`: tiny's backbone, batch 32, 1200 steps; 2-core
         CPU, about 4 minutes; validation loss 1.43 nats/char (2.06 bits/byte).
  small  lexi train --config configs/standard.py:small --workdir runs/std_small
         4 layers, width 256, 4 heads x 64, MLP 1024, context 256, batch 32, 300 steps
         (2.5M tokens); 2-core CPU, 20 minutes (19.6 measured, 2,470 tokens/s); validation
         loss 2.15 nats/char (3.11 bits/byte).
  small_sp  lexi train --config configs/standard.py:small_sp --workdir runs/base
         small over a 4,000-piece SentencePiece unigram model trained on the corpus: the
         base model of configs/zett.py. 2-core CPU, 27.7 min (the first 90 steps beside the
         test suite); validation loss 4.38 nats/token (about 1.5 bits/byte, 4.2 chars/token).
  medium lexi train --config configs/standard.py:medium --workdir runs/std_medium
         4 layers, width 128, 4 heads x 32, MLP 512, context 256, batch 32, 2400 steps
         (19.7M tokens), lr 3e-3; pinned to one core (`taskset -c 0`) while the lexinvariant
         twin ran on the other: 96 minutes; training loss 0.95 nats/char, validation 0.99;
         cipher / plain loss 6.81 (`lexi eval`, 100 windows).
  cpu    lexi train --config configs/standard.py:cpu --workdir runs/std_cpu
         the lexinvariant cpu config's twin: medium with the train split's 65 characters
         + 4 specials (tokenizer kind corpus_chars) and 4 heads x 64; pinned to one core
         (`taskset -c 1`) while the lexinvariant twin ran on the other: 119 minutes;
         validation loss 0.983 nats/char; late-context loss 0.963, cipher / plain 7.00
         (`python benchmarks/cpu_pair.py`, README "The cpu character-level pair").
  paper  lexi train --config configs/standard.py:paper --workdir runs/std_paper
         The lexinvariant paper's standard LM (Huang et al. 2023): 12 layers, 8 heads x 128
         (d_model 1024), MLP 4096, T5 relative position bias, Adafactor, cosine 0.01 -> 0.001
         after 1000 warmup steps, sequence 512, batch 64, 250k steps (8.2B tokens), ASCII
         characters, bf16 compute. The paper trained it on one TPU v3-8 in about 23 hours;
         not run here (on this CPU one step would take minutes).
  paper_32k  the same over 32k SentencePiece pieces: T5's own model with
         --config.data.tokenizer.model_file=/path/to/spiece.model, or, left empty, a 32k
         unigram model trained on the corpus. Not run here.
"""
from lexi.config import base_config
from lexi.presets import (apply_cpu_shape, apply_medium_shape, apply_paper_shape, apply_small_shape,
                          apply_tiny_shape, demo_config)

# the variants after the colon (docs/configs.md is generated from them)
VARIANTS = ("tiny", "demo", "small", "small_sp", "medium", "cpu", "paper", "paper_32k")


def get_config(variant: str = "tiny"):
    c = base_config()
    c.embedding = {"kind": "trainable", "tied": True, "readout_chunk": 0, "readout_ids": "all"}
    if variant == "tiny":
        apply_tiny_shape(c)
    elif variant == "demo":
        return demo_config("standard")  # exactly what `lexi demo` trains
    elif variant == "small":
        apply_small_shape(c)
    elif variant == "small_sp":  # the ZeTT base (configs/zett.py): subword pieces, as the paper's bases have
        apply_small_shape(c)
        c.data.tokenizer.update(kind="sentencepiece", vocab_size=4000, model_type="unigram")
    elif variant == "medium":
        apply_medium_shape(c)
    elif variant == "cpu":
        apply_cpu_shape(c)
    elif variant in ("paper", "paper_32k"):
        apply_paper_shape(c, vocab_32k=variant == "paper_32k")
    else:
        raise ValueError(f"unknown variant {variant!r}: tiny, demo, small, small_sp, medium, cpu, paper, paper_32k")
    return c
