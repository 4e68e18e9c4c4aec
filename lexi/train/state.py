"""Training state: a plain pytree, so it shards, donates and checkpoints as one object.

`constants` holds frozen arrays some embeddings read (a glyph table): checkpointed with
the run, so a run directory evaluates without the font, but outside `params`, so no
gradient, optimizer slot or weight decay ever touches them. Empty for most families."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    constants: Any = flax.struct.field(default_factory=dict)
