"""A rolling buffer of streamed documents for samplers that draw text at random from a pool (ZeTT).

Such a sampler (lexi/zett/sampler.py's ZettBatches) takes a list of documents and makes the batch
of any step as a pure function of the step. Streaming a corpus too large for one list, the
documents come in blocks of `block_documents`, read in turn from the shards (stream_source.py):
block b serves steps [start_b, start_b + n_b), with n_b = max(min_steps, ceil(its characters /
chars_per_step)), so a block is drawn from for about as many steps as it takes to read its text
once, and for at least `min_steps` (ZeTT: its vocabulary window, which a new block rebuilds from
that block's text, a cold start benchmarks/design_figures.py times). Only the current block is held in memory.

Resume is exact through `state_at(step)`: the shard iterator's state before the block holding
`step` and where that block starts (a few integers, saved next to each checkpoint like the
streaming pipeline's, lexi/data/stream_state.py); `restore` reads that one block again.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import threading
from typing import Any, Callable

from lexi.errors import UserError

STATE_FORMAT = 1  # bump when the block rule or the state changes: old states are then refused
_KEEP_BLOCKS = 64  # where recent blocks start and end (the prefetcher runs ahead of checkpoints)


@dataclasses.dataclass
class _Block:
    start: int  # its first step
    end: int  # one past its last step
    before: Any  # the shard iterator's state before its first document
    after: Any  # ... and after its last


class DocumentBlocks:
    """`batch_at(step)` = make(documents of the block holding `step`).batch_at(step), steps asked for
    in order (or any kept earlier one); `state_at` / `restore` as StreamingBatches'."""

    def __init__(self, shards: list, make: Callable[[list[str]], Any], *, block_documents: int,
                 chars_per_step: float, min_steps: int = 1, seed: int = 0, open_shards: int = 4,
                 what: str = "the data"):
        from lexi.data.stream_source import ShardedDocuments
        from lexi.data.streaming import _digest

        if block_documents < 1:
            raise UserError(f"config.data.streaming_shuffle_documents (the documents held at once) must be >= 1, "
                            f"got {block_documents}")
        if chars_per_step <= 0 or min_steps < 1:
            raise ValueError(f"chars_per_step ({chars_per_step}) and min_steps ({min_steps}) must be positive")
        self._make, self._what = make, what
        self._identity = {"format": STATE_FORMAT, "block_documents": block_documents,
                          "chars_per_step": float(chars_per_step), "min_steps": min_steps, "seed": seed,
                          "open_shards": open_shards, "shards": _digest([sh.name.rsplit("/", 1)[-1] for sh in shards])}
        self.block_documents, self.chars_per_step, self.min_steps = block_documents, chars_per_step, min_steps
        self._it = iter(ShardedDocuments(shards, seed=seed, shuffle=True, open_shards=open_shards, what=what))
        self._blocks: list[_Block] = []  # recent blocks, oldest first
        self._current: tuple[int, Any] = (-1, None)  # (start of the block in memory, its sampler)
        self._lock = threading.Lock()

    def _read(self, start: int, before: Any) -> tuple[_Block, Any]:
        """The block that starts at step `start` from shard-iterator state `before`, and its sampler."""
        self._it.set_state(before)
        docs = list(itertools.islice(self._it, self.block_documents))
        steps = max(self.min_steps, math.ceil(sum(map(len, docs)) / self.chars_per_step))
        block = _Block(start, start + steps, before, self._it.get_state())
        return block, self._make(docs)

    def _sampler(self, step: int):
        if not self._blocks:
            block, sampler = self._read(0, self._it.get_state())
            self._blocks, self._current = [block], (block.start, sampler)
        kept = [b for b in self._blocks if b.start <= step < b.end]
        if kept and kept[0].start == self._current[0]:
            return self._current[1]
        if kept:  # an earlier block again (a step asked for twice)
            block, sampler = self._read(kept[0].start, kept[0].before)
            self._current = (block.start, sampler)
            return sampler
        if step < self._blocks[0].start:
            raise ValueError(f"step {step} is before the oldest kept block (step {self._blocks[0].start}); restore a "
                             "saved state to go back further")
        while step >= self._blocks[-1].end:
            block, sampler = self._read(self._blocks[-1].end, self._blocks[-1].after)
            self._blocks = (self._blocks + [block])[-_KEEP_BLOCKS:]
            self._current = (block.start, sampler)
        return self._current[1]

    def batch_at(self, step: int) -> dict:
        with self._lock:
            sampler = self._sampler(step)
        return sampler.batch_at(step)

    def state_at(self, step: int) -> dict:
        """What `restore` needs to go on with step `step` (a step at most one past a block read)."""
        with self._lock:
            if not self._blocks and step == 0:
                return {**self._identity, "step": 0, "block_start": 0, "iterator": self._it.get_state()}
            for b in self._blocks:
                if b.start <= step < b.end:
                    return {**self._identity, "step": step, "block_start": b.start, "iterator": b.before}
            last = self._blocks[-1] if self._blocks else None
            if last is not None and step == last.end:
                return {**self._identity, "step": step, "block_start": step, "iterator": last.after}
        raise ValueError(f"no block kept for step {step}")

    def restore(self, step: int, saved: dict) -> None:
        theirs = {k: saved.get(k) for k in self._identity}
        if theirs != self._identity or saved.get("step") != step:
            changed = [f"{k}: {theirs[k]!r} -> {v!r}" for k, v in self._identity.items() if theirs[k] != v]
            if saved.get("step") != step:
                changed.append(f"step: {saved.get('step')!r} -> {step}")
            raise UserError("the data-iterator state saved with this checkpoint is for a different stream ("
                            + "; ".join(changed) + f") of {self._what}: input_pipeline=streaming resumes exactly "
                            "only with the same data settings, batch size, seed and files")
        with self._lock:
            block, sampler = self._read(int(saved["block_start"]), saved["iterator"])
            if not block.start <= step < block.end:
                raise UserError(f"the data-iterator state for step {step} names a block of steps "
                                f"{block.start}-{block.end - 1}: the files changed since it was saved")
            self._blocks, self._current = [block], (block.start, sampler)

    def close(self) -> None:
        self._it.close()
