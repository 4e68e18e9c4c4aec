"""Data-iterator states of the streaming pipeline, one JSON file per process next to each checkpoint.

RUN/data_state/<step>/process_<i>.json holds what `StreamingBatches.restore` needs to continue
with step <step>. Each process writes its own (the states differ per process, and Orbax's JSON
item is written by process 0 only), atomically, before the checkpoint of that step is issued:
so whenever a checkpoint is complete its data states are too. States are removed only once no
kept checkpoint is older than them, so the one a resume picks always has its states.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from lexi.errors import UserError

DIRNAME = "data_state"


def path(workdir: Path, step: int, process_index: int) -> Path:
    return Path(workdir) / DIRNAME / str(step) / f"process_{process_index}.json"


def save(workdir: Path, step: int, process_index: int, state: dict) -> None:
    p = path(workdir, step, process_index)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(workdir: Path, step: int, process_index: int) -> Optional[dict]:
    """The state saved for `step`, or None when there is none."""
    p = path(workdir, step, process_index)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"the data-iterator state {p} cannot be read ({e}), so the checkpoint of step {step} cannot "
                        f"be resumed exactly; move {Path(workdir) / 'checkpoints' / str(step)} aside to resume from an "
                        "older one") from e


def prune(workdir: Path, kept_steps: Iterable[int], process_index: int) -> None:
    """Remove this process's states older than the oldest kept checkpoint (and directories left empty)."""
    kept = list(kept_steps)
    root = Path(workdir) / DIRNAME
    if not kept or not root.is_dir():
        return
    oldest = min(kept)
    for d in root.iterdir():
        if d.name.isdigit() and int(d.name) < oldest:
            (d / f"process_{process_index}.json").unlink(missing_ok=True)
            try:
                d.rmdir()  # only once every process removed its file
            except OSError:
                if process_index == 0 and not any(d.glob("process_*.json")):
                    shutil.rmtree(d, ignore_errors=True)  # temp files of a killed write
