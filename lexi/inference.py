"""Load a run directory's newest parameters for sampling and evaluation."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lexi.errors import UserError
from lexi.model.lm import model_variables
from lexi.train.checkpoint import Checkpointer
from lexi.train.setup_run import Run, build_run


@dataclasses.dataclass
class Loaded:
    run: Run
    params: Any
    step: int
    constants: Any = dataclasses.field(default_factory=dict)

    @property
    def variables(self) -> dict:
        """What `model.apply` (and lexi.eval, lexi.generate) take."""
        return model_variables(self.params, self.constants)

    @property
    def model(self):
        return self.run.model

    @property
    def tokenizer(self):
        return self.run.tokenizer


def load_for_inference(workdir: Path) -> Loaded:
    workdir = Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.exists():
        raise UserError(f"{workdir} is not a lexi run directory (no config.json); train one with `lexi train`")
    cfg = ml_collections.ConfigDict(json.loads(cfg_path.read_text()))
    if cfg.get("task", "lm") == "zett":
        raise UserError(f"{workdir} holds a ZeTT hypernetwork, not a language model: use `lexi zett eval` or "
                        f"`lexi zett transfer --workdir {workdir} ...` (which writes a language-model run)")
    ckpt_dir = workdir / "checkpoints"
    if not ckpt_dir.exists():
        raise UserError(f"{workdir} has no checkpoint yet; train it with `lexi train` first")
    run = build_run(cfg, workdir)
    ckpt = Checkpointer(ckpt_dir, keep=cfg.train.keep_checkpoints, async_save=False)
    step = ckpt.latest_step()
    if step is None:
        raise UserError(f"{workdir} has no checkpoint yet; train it with `lexi train` first")
    params, constants = ckpt.restore_weights(step, run.abstract_state)  # no optimizer state
    ckpt.close()
    return Loaded(run=run, params=params, step=step, constants=constants)


def sample_text(loaded: Loaded, prompt: str, *, max_new: int = 200, temperature: float = 0.8, top_k: int = 0,
                seed: int = 0, num_samples: int = 1) -> list[str]:
    from lexi.generate import generate

    tok = loaded.tokenizer
    ids = [tok.bos_id] + tok.encode(prompt)
    prompt_BxP = jnp.asarray(np.tile(np.asarray(ids, np.int32), (num_samples, 1)))
    rng = jax.random.key(seed)
    ctx = loaded.model.embedding.context(jax.random.fold_in(rng, 1), jnp.int32(0), jnp.arange(num_samples))
    out = generate(loaded.model, loaded.variables, prompt_BxP, ctx, jax.random.fold_in(rng, 2),
                   max_new=max_new, temperature=temperature, top_k=top_k)
    return [tok.decode(until_end_of_text(row, tok)) for row in np.asarray(out)]


def until_end_of_text(ids, tok) -> list[int]:
    """`ids` up to (without) the first end of text: eos, or bos, which separates documents in
    lexi's packed training streams, so a model ends a document by starting the next one."""
    ids = [int(i) for i in ids]
    ends = [k for k, i in enumerate(ids) if i in (tok.eos_id, tok.bos_id)]
    return ids[: ends[0]] if ends else ids
