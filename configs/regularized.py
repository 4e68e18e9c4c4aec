"""Standard LM with lexinvariance regularisation (Huang et al. 2023, section 6): each token
is replaced with probability p by pi(token), pi a random vocabulary permutation drawn per
sequence; evaluation sees clean text.

Variants:
  tiny   lexi train --config configs/regularized.py:tiny --workdir runs/reg
         configs/standard.py:tiny with p = 0.2; 2-core CPU, 37 s; training loss (on
         corrupted text) 3.32 nats/char, validation loss (clean text) 2.52 (standard tiny: 2.25).
  small  configs/standard.py:small with p = 0.2. Not run yet.
  gaussian_mix_tiny  the variant the paper found the model learns to ignore: random
         Gaussian input vectors mixed in with probability p instead of permuting. Not run yet.
Override the rate with --config.embedding.p=0.1.
"""
from lexi.config import base_config
from lexi.presets import apply_small_shape, apply_tiny_shape

# the variants after the colon (docs/configs.md is generated from them)
VARIANTS = ("tiny", "small", "gaussian_mix_tiny", "gaussian_mix_small")


def get_config(variant: str = "tiny"):
    c = base_config()
    mode = "gaussian_mix" if variant.startswith("gaussian_mix") else "permute"
    c.embedding = {"kind": "regularized", "tied": True, "readout_chunk": 0, "p": 0.2, "mode": mode}
    shape = variant.removeprefix("gaussian_mix_")
    if shape == "tiny":
        apply_tiny_shape(c)
    elif shape == "small":
        apply_small_shape(c)
    else:
        raise ValueError(f"unknown variant {variant!r}: tiny, small, gaussian_mix_tiny, gaussian_mix_small")
    return c
