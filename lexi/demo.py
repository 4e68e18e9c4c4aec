"""`lexi demo`: the headline experiment in one command, on the embedded English corpus.

Trains a character-level lexinvariant LM and a standard LM of the same shape (lexi.presets
.demo_config), evaluates both with the full suite (fewer probe steps and task examples than
the paper, to fit in minutes) and prints the comparison table.

`smoke=True` (`lexi demo --smoke`) runs all of it at tiny counts (SMOKE_TRAIN, SMOKE_EVAL: a
few training steps of small batches, a few probe steps, examples and sequences), so a test
(tests/test_demo.py) can tell that the demo still works end to end; its figures are not
results. It takes about 75 CPU seconds, nearly all of them compiling (about a hundred
programs per model), which smaller counts would not shorten.
"""
from __future__ import annotations

import logging
from pathlib import Path

from lexi.eval.suite import compare, run_suite
from lexi.presets import demo_config
from lexi.train.loop import train

log = logging.getLogger("lexi")


# --smoke: enough steps for the standard model to learn which characters are common (so a
# cipher already hurts it), batches of 4, one validation and checkpoint at the end
SMOKE_TRAIN = {"steps": 30, "batch_size": 4, "warmup_steps": 3, "log_every": 10, "eval_every": 30,
               "checkpoint_every": 30, "eval_batches": 1}
SMOKE_EVAL = {"probe_steps": 5, "examples": 8, "sequences": 8}
FULL_EVAL = {"probe_steps": 300, "examples": 200, "sequences": 64}


def demo_run_config(kind: str, *, steps: int = 0, smoke: bool = False):
    """The demo's training config for `kind`: the demo preset, at smoke size if asked, with
    `steps` (if given) replacing its step count and capping warmup at a tenth of it."""
    cfg = demo_config(kind)
    if smoke:
        cfg.train.update(SMOKE_TRAIN)
    if steps:
        cfg.train.steps = steps
        cfg.train.warmup_steps = min(cfg.train.warmup_steps, max(steps // 10, 1))
    return cfg


def run_demo(workdir: Path, *, steps: int = 0, probe_steps: int | None = None, examples: int | None = None,
             sequences: int | None = None, smoke: bool = False) -> dict:
    """Train, evaluate and compare both models; evaluation counts left as None take the
    demo's (or, with `smoke`, SMOKE_EVAL's)."""
    workdir = Path(workdir)
    given = {"probe_steps": probe_steps, "examples": examples, "sequences": sequences}
    counts = {k: v if v is not None else (SMOKE_EVAL if smoke else FULL_EVAL)[k] for k, v in given.items()}
    runs = []
    for kind in ("lexinvariant", "standard"):
        cfg = demo_run_config(kind, steps=steps, smoke=smoke)
        run_dir = workdir / kind
        log.info("== training the %s model in %s", kind, run_dir)
        train(cfg, run_dir)
        log.info("== evaluating %s", run_dir)
        run_suite(run_dir, probe_steps=counts["probe_steps"], examples=counts["examples"],
                  num_sequences=counts["sequences"])
        runs.append(run_dir)
    return compare(runs, workdir / "compare")
