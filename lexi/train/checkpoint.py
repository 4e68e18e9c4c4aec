"""Orbax checkpoints behind one small class (Orbax changes its API; nothing else imports it).

A checkpoint holds the train state (parameters, optimizer, step) and a JSON `meta` with
what resuming needs besides arrays (counters, data fingerprint). Orbax writes each step to
a temporary directory and renames it when complete, so a killed save never shadows a good
checkpoint; `max_to_keep` removes old ones only after a newer one is finished, and
temporary directories left by a killed save are cleaned up at start. A checkpoint that
cannot be read (truncated or overwritten files) is moved to RUN/checkpoints_corrupt/ with a
warning, and the newest readable one is used instead.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from lexi.errors import UserError

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save, cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict, force: bool = True) -> None:
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_fields(state)), meta=ocp.args.JsonSave(meta)), force=force)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """`abstract_state`: ShapeDtypeStructs with shardings, so arrays land where they belong."""
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_fields(abstract_state)), meta=ocp.args.JsonRestore()))
        return type(abstract_state)(**out["state"]), dict(out["meta"])

    def restore_latest(self, abstract_state: Any) -> Optional[tuple[Any, dict, int]]:
        """(state, meta, step) of the newest checkpoint that reads back, or None if there is none.

        Unreadable newer ones are moved aside (never deleted) with a warning naming them. If
        no checkpoint reads, nothing is moved and the error lists each failure.
        """
        failures: list[tuple[int, Exception]] = []
        for step in reversed(self.all_steps()):
            try:
                state, meta = self.restore(step, abstract_state)
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                failures.append((step, e))
                continue
            for bad, err in failures:
                moved = self._quarantine(bad)
                log.warning("checkpoint %d in %s cannot be read (%s: %s); moved it to %s and resumed from step %d",
                            bad, self.directory, type(err).__name__, _first_line(err), moved, step)
            if failures:
                self.reload()
            return state, meta, step
        if failures:
            detail = "; ".join(f"step {s}: {type(e).__name__}: {_first_line(e)}" for s, e in failures)
            raise UserError(f"no checkpoint in {self.directory} can be read ({detail}). Nothing was changed; "
                            "move that directory away to start the run afresh.")
        return None

    def _quarantine(self, step: int) -> Path:
        src = self.directory / str(step)
        dst = self.directory.parent / "checkpoints_corrupt" / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        if jax.process_index() == 0 and src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"lexi_quarantine_{step}")
        return dst

    def restore_weights(self, step: int, abstract: Any) -> tuple[Any, Any]:
        """(params, constants) of a checkpoint, leaving the optimizer slots on disk: what
        sampling and evaluation need, in a third of the memory AdamW's state would add.
        `abstract`: a TrainState of ShapeDtypeStructs, or a dict with "params" (and "constants")."""
        fields = abstract if isinstance(abstract, dict) else _fields(abstract)
        wanted = {k: v for k, v in fields.items() if k in ("params", "constants") and not (isinstance(v, dict) and not v)}
        reader = ocp.CheckpointManager(self.directory, item_handlers={  # both items named: no "meta" warning
            "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})
        on_disk = reader.item_metadata(step)["state"]  # the rest is skipped, whatever its structure
        reader.close()
        item = {k: (wanted[k] if k in wanted else jax.tree_util.tree_map(lambda _: ocp.PLACEHOLDER, v))
                for k, v in dict(on_disk).items()}
        args = jax.tree_util.tree_map(
            lambda x: ocp.PLACEHOLDER if x is ocp.PLACEHOLDER else ocp.ArrayRestoreArgs(sharding=x.sharding), item)
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(item=item, restore_args=args)))["state"]
        return out["params"], out.get("constants", {})

    def restore_meta(self, step: int) -> dict:
        out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def reload(self) -> None:
        """Re-read the directory (after a failed save or a checkpoint moved aside)."""
        self._manager.reload()

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _fields(state: Any) -> dict:
    """A state dataclass as the dict that is written, leaving out empty fields (a family
    without frozen constants writes exactly what it wrote before they existed)."""
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
            if not (isinstance(getattr(state, f.name), dict) and not getattr(state, f.name))}


def _first_line(e: Exception, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:limit]


def state_bytes(abstract_state: Any) -> int:
    """Bytes one checkpoint of this state takes before compression (all processes together)."""
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(abstract_state)
               if hasattr(x, "dtype"))


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
