"""ZeTT: a hypernetwork that predicts a trained lexi LM's embeddings for any tokenizer.

The base is a standard lexi run (trainable embedding), named by `base_workdir`; its
backbone and embeddings stay frozen and only the hypernetwork trains (lexi/zett/task.py).
Validation loss is bits per byte of held-out text under tokenizers sampled from it;
val_bpb_byte beside it is the same text under the `byte` tokenizer (lexi/zett/validation.py).

  tiny   lexi train --config configs/zett.py:tiny --workdir runs/zett_tiny --config.base_workdir=runs/base_tiny
         the test size: 1 encoder layer, 512-id sampled vocabularies, batch 4 x 64, 20 steps.
         Byte-like vocabularies (all variants but paper): a share of the steps (zett.byte_like_share)
         gets the 256 byte pieces plus a few multi-character pieces, or the bytes alone, so the
         hypernetwork is trained on byte-level vocabularies too (lexi/zett/byte_like.py).
  small  lexi train --config configs/zett.py:small --workdir runs/zett --config.base_workdir=runs/base
         for the base `lexi train --config configs/standard.py:small_sp --workdir runs/base`;
         3 encoder layers (width = the base's 256), 2,048-id sampled vocabularies, 8 pieces
         per token, batch 16 x 128 tokens, 1,000 steps, byte-like share 0.1 (100 steps); one
         core (`taskset -c 0`, the other busy with tests): 84 min (5.0 s/step), so base and
         hypernetwork train in about 2 h. Validation 2.43 bits/byte at step 200, 2.33 at 600,
         2.26 at 1,000 (the 600-step schedule ended at 2.32); val_bpb_byte (KJV validation as
         bytes) 4.04, 3.65, 3.64.
         `lexi zett eval` on each target, beside every baseline: README, "ZeTT"
         (`python benchmarks/zett_table.py --zett-workdir runs/zett --out runs/zett_table`).
  paper  the paper's recipe: 32,768-id vocabularies, batch 128 x 128, AdamW (b2 0.95, weight
         decay 0.01), clip 0.1, 200k steps, bf16; unigram vocabularies only (byte_like_share 0).
         Not run here.
"""
import ml_collections

from lexi.config import base_config

# the variants after the colon (docs/configs.md is generated from them)
VARIANTS = ("tiny", "small", "paper")


def get_config(variant: str = "small"):
    c = base_config()
    c.task = "zett"
    c.base_workdir = ""  # run directory of the base LM (a standard lexi run): required
    c.hypernet = ml_collections.ConfigDict({
        "num_layers": 3,  # Transformer encoder over each token's base pieces
        "num_heads": 4,
        "mlp_ratio": 2,  # encoder MLP width = mlp_ratio x base d_model
        "pieces": 8,  # base pieces per target token; longer tokens are cut
        "residual": True,  # row = first piece's base row + zero-initialised delta
    })
    c.zett = ml_collections.ConfigDict({
        "vocab_size": 4096,  # sampled tokenizer size (256 bytes and 4 specials included), padded to x128
        "window": 32,  # candidate substrings are counted over the text of the last `window` steps
        "noise_mu": -0.5,  # log-normal parameters of the noise scale added to log(frequency x length):
        "noise_sigma": 1.0,  # median scale 0.6; consecutive KJV vocabularies share about 41% of pieces
        "aux_weight": 0.5,  # MSE toward base rows for tokens that are one base piece
        "identity_steps": 0,  # first steps train only that MSE (for residual = False)
        # byte-like vocabularies (lexi/zett/byte_like.py): the 256 bytes, no single characters, few pieces
        "byte_like_share": 0.1,  # share of steps that draw one, so byte-level targets are seen in training
        "byte_like_min_pieces": 32,  # multi-character pieces besides the bytes: uniform in [min, max] ...
        "byte_like_max_pieces": 512,  # ... at most vocab_size - 260
        "byte_like_bytes_only_share": 0.5,  # of those steps: the bytes alone (the `byte` target's form)
    })
    c.data.update(corpus="kjv", seq_len=128)
    c.train.update(optimizer="adamw", b2=0.95, weight_decay=0.01, grad_clip=0.1, schedule="cosine",
                   end_lr_ratio=0.1, eval_batches=4)
    if variant == "tiny":
        c.hypernet.update(num_layers=1, num_heads=2)
        c.zett.update(vocab_size=512, window=4, byte_like_max_pieces=192)
        c.data.seq_len = 64
        c.train.update(steps=20, batch_size=4, lr=1e-3, warmup_steps=2, log_every=5, eval_every=10,
                       checkpoint_every=10, eval_batches=2)
    elif variant == "small":  # sized for a 2-core CPU: 2,048-id vocabularies, 1,000 steps
        c.zett.update(vocab_size=2048, byte_like_share=0.1)  # stated: 100 of 1,000 steps byte-like
        c.train.update(steps=1000, batch_size=16, lr=1e-3, warmup_steps=60, log_every=20, eval_every=200,
                       checkpoint_every=200)
    elif variant == "paper":
        c.zett.update(vocab_size=32768, byte_like_share=0.0)  # the paper samples unigram vocabularies only
        c.train.update(steps=200_000, batch_size=128, lr=6e-5, warmup_steps=10_000, log_every=100,
                       eval_every=5000, checkpoint_every=5000)
    else:
        raise ValueError(f"unknown variant {variant!r}: tiny, small, paper")
    return c
