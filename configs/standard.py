"""Standard decoder LM with a learned, tied embedding table: the baseline for every family.

Variants (figures measured on the project's 2-core CPU unless stated):
  tiny   lexi train --config configs/standard.py:tiny --workdir runs/std_tiny
         2 layers, width 64, ASCII characters, KJV; 2-core CPU, about 1 minute;
         loss falls from 4.9 (uniform over 128) to about TODO_TINY nats/char.
  small  lexi train --config configs/standard.py:small --workdir runs/std_small
         4 layers, width 256, context 256, batch 32; 2-core CPU, about 15 minutes;
         TODO_SMALL.
  paper  lexi train --config configs/standard.py:paper --workdir runs/std_paper
         The lexinvariant paper's standard LM (Huang et al. 2023): 12 layers, 8 heads x 128
         (d_model 1024), MLP 4096, T5 relative position bias, Adafactor, cosine 0.01 -> 0.001
         after 1000 warmup steps, sequence 512, batch 64, 250k steps (8.2B tokens), ASCII
         characters. The paper ran it on one TPU v3-8 for about 23 hours; not run here.
  paper_32k  the same with a 32k SentencePiece vocabulary: set
         --config.data.tokenizer.model_file=/path/to/t5/spiece.model for T5's own
         (32,000 pieces), or leave it empty to train a 32k unigram model on the corpus.
"""
from lexi.config import base_config
from lexi.presets import apply_paper_shape, apply_small_shape, apply_tiny_shape, demo_config


def get_config(variant: str = "tiny"):
    c = base_config()
    c.embedding = {"kind": "trainable", "tied": True, "readout_chunk": 0}
    if variant == "tiny":
        apply_tiny_shape(c)
    elif variant == "demo":
        return demo_config("standard")  # exactly what `lexi demo` trains
    elif variant == "small":
        apply_small_shape(c)
    elif variant in ("paper", "paper_32k"):
        apply_paper_shape(c, vocab_32k=variant == "paper_32k")
    else:
        raise ValueError(f"unknown variant {variant!r}: tiny, small, paper, paper_32k")
    return c
