"""`lexi demo`: the headline experiment in one command, on the embedded English corpus.

Trains a character-level lexinvariant LM and a standard LM of the same shape (lexi.presets
.demo_config), evaluates both with the full suite (fewer probe steps and task examples than
the paper, to fit in minutes) and prints the comparison table.
"""
from __future__ import annotations

import logging
from pathlib import Path

from lexi.eval.suite import compare, run_suite
from lexi.presets import demo_config
from lexi.train.loop import train

log = logging.getLogger("lexi")


def run_demo(workdir: Path, *, steps: int = 0, probe_steps: int = 300, examples: int = 200,
             sequences: int = 64) -> dict:
    workdir = Path(workdir)
    runs = []
    for kind in ("lexinvariant", "standard"):
        cfg = demo_config(kind)
        if steps:
            cfg.train.steps = steps
            cfg.train.warmup_steps = min(cfg.train.warmup_steps, max(steps // 10, 1))
        run_dir = workdir / kind
        log.info("== training the %s model in %s", kind, run_dir)
        train(cfg, run_dir)
        log.info("== evaluating %s", run_dir)
        run_suite(run_dir, probe_steps=probe_steps, examples=examples, num_sequences=sequences)
        runs.append(run_dir)
    return compare(runs, workdir / "compare")
