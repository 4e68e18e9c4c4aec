"""The streaming input pipeline (config.data.input_pipeline = "streaming"), built on Grain.

For corpora too large to tokenize before step 1 (the cached pipeline, pipeline.py, writes the
whole split as one .npy per host and holds a permutation of all its windows). Per process:

  shards (this process's files, shards.py) -> documents, shard order shuffled per epoch
  (stream_source.py) -> window shuffle of documents (stream_shuffle.py) -> groups of documents
  -> tokenized on the fly into bos-separated chunks -> windows of L+1 tokens with stride L
  (stream_packing.py) -> window shuffle of rows -> [B_local, L+1] -> `packing.pack`: the same
  batch dict, in the same layout, as the cached pipeline's `Batches`. A `tfds:` corpus replaces
  the first three stages by its records read by index under one global shuffle (tfds_source.py).

Every stage is a Grain IterDataset whose iterator has a small JSON-able state; the batch-level
prefetch is the training loop's `Prefetcher` thread, which calls `batch_at` in step order.

Memory is bounded by the two shuffle windows; nothing is written to disk; the first batch
needs only the first window of documents. Resume is exact through the iterator state
(`state_at`, saved next to each checkpoint by lexi/data/stream_state.py; `restore`), not a
pure function of the step: a document stream cannot be indexed without reading it all.
Validation reads a bounded number of documents of the validation split (`validation_tokens`).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import logging
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lexi.data import repeats
from lexi.data.packing import check_length, pack
from lexi.errors import UserError

STATE_FORMAT = 1  # bump when the pipeline's stages or their states change: old states are then refused
_ENCODE_GROUP = 64  # documents tokenized in one call (multithreaded for SentencePiece)
_KEEP_STATES = 64  # iterator states kept for steps recently produced (the prefetcher runs ahead of saves)


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What shapes one process's stream; the config.data.streaming_* fields."""

    seq_len: int
    global_batch_size: int
    seed: int
    shuffle: bool = True
    open_files: int = 4
    shuffle_documents: int = 10_000
    shuffle_rows: int = 1024
    tokenizer_processes: int = 0  # worker processes that encode (stream_encode.py); 0: the loading thread

    @classmethod
    def from_config(cls, cfg, shuffle: bool = True) -> "StreamSettings":
        d, default = cfg.data, cls(0, 0, 0)
        return cls(seq_len=d.seq_len, global_batch_size=cfg.train.batch_size, seed=cfg.seed, shuffle=shuffle,
                   open_files=int(d.get("streaming_open_files", default.open_files)),
                   shuffle_documents=int(d.get("streaming_shuffle_documents", default.shuffle_documents)),
                   shuffle_rows=int(d.get("streaming_shuffle_rows", default.shuffle_rows)),
                   tokenizer_processes=int(d.get("streaming_tokenizer_processes", default.tokenizer_processes)))


def _digest(names: list[str]) -> str:
    """Identifies a shard list in saved states (file names, not paths: a moved corpus still resumes)."""
    return f"{len(names)}:" + hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _seed(seed: int, process_index: int, stage: int) -> int:
    """A seed per (run seed, process, stage), so processes and stages shuffle independently."""
    return int(np.random.SeedSequence([seed, process_index, stage]).generate_state(1)[0]) % (1 << 30)


def document_groups(corpus, split: str, s: StreamSettings, process_index: int = 0, process_count: int = 1):
    """(this process's documents of the split in lists of _ENCODE_GROUP, endlessly and shuffled, as a
    Grain IterDataset; the names of what it reads, for saved states). A `tfds:` corpus reads its own
    records by index, one global shuffle, a group per batched read (tfds_source.py); any other reads
    its shards (shards.py) through a window shuffle of documents."""
    from lexi.data.tfds_corpus import TFDSCorpus

    if isinstance(corpus, TFDSCorpus):
        from lexi.data.tfds_source import tfds_document_groups

        ds, name = tfds_document_groups(corpus, split, group=_ENCODE_GROUP, seed=_seed(s.seed, 0, 0),
                                        shuffle=s.shuffle, process_index=process_index, process_count=process_count)
        return ds, [name]
    from lexi.data.shards import process_shards
    from lexi.data.stream_shuffle import WindowShuffle
    from lexi.data.stream_source import ShardedDocuments

    shards = process_shards(corpus, split, process_index, process_count)
    what = f"the {split} split of corpus {corpus.name!r} for process {process_index} of {process_count}"
    ds = ShardedDocuments(shards, seed=_seed(s.seed, process_index, 0), shuffle=s.shuffle,
                          open_shards=s.open_files if s.shuffle else 1, what=what)
    if s.shuffle and s.shuffle_documents > 1:
        ds = WindowShuffle(ds, window_size=s.shuffle_documents, seed=_seed(s.seed, process_index, 1))
    return ds.batch(_ENCODE_GROUP, batch_fn=list), [Path(sh.name).name for sh in shards]


def rows_dataset(groups, tokenizer, s: StreamSettings, local_batch_size: int, process_index: int = 0):
    """The Grain pipeline of one process over its `groups` of documents: int32[local_batch_size, L+1]
    windows, for ever."""
    from lexi.data.stream_encode import ParallelEncode
    from lexi.data.stream_packing import ConcatWindows, EncodeDocuments
    from lexi.data.stream_shuffle import WindowShuffle

    if s.tokenizer_processes:  # the same chunks in the same order, encoded in worker processes
        encoded = ParallelEncode(groups, tokenizer, s.tokenizer_processes)
    else:
        encoded = groups.map(EncodeDocuments(tokenizer))
    ds = ConcatWindows(encoded, s.seq_len)
    if s.shuffle and s.shuffle_rows > 1:
        ds = WindowShuffle(ds, window_size=s.shuffle_rows, seed=_seed(s.seed, process_index, 2))
    return ds.batch(local_batch_size, drop_remainder=True)


class StreamingBatches:
    """The `Batches` interface over a stream: `batch_at(step)` is this process's rows of that
    step, asked for in order (the loop's prefetcher does); `state_at(step)` is the JSON-able
    state from which `batch_at(step)` comes next, and `restore(step, state)` goes back to it."""

    def __init__(self, corpus, tokenizer, settings: StreamSettings, *, process_index: int = 0, process_count: int = 1,
                 repeat_share: float = 0.0, repeat_length: int = 64, split: str = "train"):
        s = settings
        if s.seq_len < 1 or s.global_batch_size < 1:
            raise UserError(f"seq_len ({s.seq_len}) and batch size ({s.global_batch_size}) must be positive")
        if s.global_batch_size % process_count:
            raise UserError(f"config.train.batch_size ({s.global_batch_size}) must be divisible by the number of "
                            f"processes ({process_count})")
        if s.shuffle_documents < 0 or s.shuffle_rows < 0:
            raise UserError("config.data.streaming_shuffle_documents and streaming_shuffle_rows must be >= 0")
        repeats.check(repeat_share, repeat_length, s.seq_len)
        self.settings, self.split = s, split
        self.seq_len, self.global_batch_size, self.seed = s.seq_len, s.global_batch_size, s.seed
        self.process_index, self.process_count = process_index, process_count
        self.bos_id, self.pad_id = tokenizer.bos_id, tokenizer.pad_id
        self.repeat_share, self.repeat_length = repeat_share, repeat_length
        self.local_batch_size = s.global_batch_size // process_count
        self._row0 = process_index * self.local_batch_size
        groups, self.shard_names = document_groups(corpus, split, s, process_index, process_count)
        self._rows = rows_dataset(groups, tokenizer, s, self.local_batch_size, process_index)
        self._it = iter(self._rows)
        self._next_step = 0
        self._states: dict[int, Any] = {0: self._it.get_state()}
        self._lock = threading.Lock()

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_len

    def rows(self, step: int) -> np.ndarray:
        """int64[B_local]: the global row indices of this process's rows at `step` (as in Batches)."""
        return step * self.global_batch_size + self._row0 + np.arange(self.local_batch_size, dtype=np.int64)

    def windows_at(self, step: int) -> np.ndarray:
        """int32[B_local, L+1]: this process's windows of `step`, before packing."""
        with self._lock:
            if step != self._next_step:
                if step not in self._states:
                    raise ValueError(f"streaming batches come in order: step {step} was asked for, {self._next_step} "
                                     "is next (restore a saved state to go elsewhere)")
                self._it.set_state(copy.deepcopy(self._states[step]))
            windows_BxL1 = next(self._it)
            self._next_step = step + 1
            self._states[step + 1] = self._it.get_state()
            for old in sorted(self._states)[:-_KEEP_STATES]:
                del self._states[old]
        return windows_BxL1

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        windows = self.windows_at(step)
        if self.repeat_share:
            windows = repeats.repeat_spans(windows, self.rows(step), share=self.repeat_share,
                                           max_length=self.repeat_length, seed=self.seed, bos_id=self.bos_id)
        return pack(windows, self.bos_id, self.pad_id)

    def _identity(self) -> dict:
        """What a saved state must match; not how many processes encode, which leaves the stream as it is."""
        settings = dataclasses.asdict(self.settings)
        settings.pop("tokenizer_processes")
        return {"format": STATE_FORMAT, "process_index": self.process_index, "process_count": self.process_count,
                **settings, "shards": _digest(self.shard_names)}

    def state_at(self, step: int) -> dict:
        """What `restore` needs to continue with step `step`: the iterator state after step - 1."""
        with self._lock:
            if step not in self._states:
                raise ValueError(f"no stream state kept for step {step} (kept: {sorted(self._states)})")
            return {**self._identity(), "step": step, "iterator": copy.deepcopy(self._states[step])}

    def restore(self, step: int, saved: dict) -> None:
        """Continue from a `state_at(step)` of an earlier run with the same settings."""
        mine, theirs = self._identity(), {k: saved.get(k) for k in self._identity()}
        if theirs != mine or saved.get("step") != step:
            changed = [f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in mine if theirs[k] != mine[k]]
            if saved.get("step") != step:
                changed.append(f"step: {saved.get('step')!r} -> {step}")
            raise UserError("the data-iterator state saved with this checkpoint is for a different stream ("
                            + "; ".join(changed) + "): input_pipeline=streaming resumes exactly only with the same "
                            "data settings, batch size, seed, files and number of processes")
        with self._lock:
            self._it.set_state(copy.deepcopy(saved["iterator"]))
            self._next_step = step
            self._states = {step: copy.deepcopy(saved["iterator"])}

    def close(self) -> None:
        self._it.close()


def validation_tokens(corpus, tokenizer, max_documents: int, seq_len: Optional[int] = None) -> np.ndarray:
    """int32[N] in memory: bos + ids of the first `max_documents` documents of the validation split, the
    layout of the cached stream. Reads no further than those documents (for text_files, with its hashed
    split, the files up to the last of them), and never the train split's tokens."""
    if max_documents < 1:
        raise UserError(f"config.data.streaming_validation_documents must be >= 1, got {max_documents}")
    return head_tokens(corpus, tokenizer, "validation", max_documents, seq_len=seq_len)


def head_tokens(corpus, tokenizer, split: str, max_documents: int, *, seq_len: Optional[int] = None,
                max_tokens: Optional[int] = None) -> np.ndarray:
    """int32[N] in memory: bos + ids of the first `max_documents` documents of `split` in the corpus'
    order (stopping early once `max_tokens` are read), the layout of the cached stream. Reads no
    further than those documents: a bounded sample for what needs a few million tokens of a split
    (validation, eval's probe pools), never the whole split."""
    from lexi.data.stream_packing import EncodeDocuments

    encode = EncodeDocuments(tokenizer)
    docs = corpus.documents(split)
    chunks, n, n_tokens = [], 0, 0
    try:
        while n < max_documents and (max_tokens is None or n_tokens < max_tokens):
            group = list(itertools.islice(docs, min(_ENCODE_GROUP, max_documents - n)))
            if not group:
                break
            n += len(group)
            try:
                chunks.append(encode(group))
            except UserError as e:  # a tokenizer that refuses text it cannot represent (corpus_chars)
                raise UserError(f"the {split} split of corpus {corpus.name!r}: {e}") from None
            n_tokens += len(chunks[-1])
    finally:
        getattr(docs, "close", lambda: None)()  # stop reading: closes the file being read
    tokens = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    if seq_len is not None:
        check_length(len(tokens), seq_len, f"the {split} split of corpus {corpus.name!r} "
                                           f"(its first {n} documents)")
    return tokens


def head_documents(corpus, split: str, max_documents: int) -> list[str]:
    """The first `max_documents` documents of `split` in the corpus' order, reading no further."""
    docs = corpus.documents(split)
    try:
        return list(itertools.islice(docs, max_documents))
    finally:
        getattr(docs, "close", lambda: None)()


def streaming_data(cfg, corpus, tokenizer, process_index: int, process_count: int):
    """(training batches, validation token stream) of config.data.input_pipeline = "streaming"."""
    d = cfg.data
    if cfg.train.prefetch > _KEEP_STATES // 2:
        raise UserError(f"config.train.prefetch ({cfg.train.prefetch}) must be at most {_KEEP_STATES // 2} with "
                        "input_pipeline=streaming: the states of batches prepared ahead are kept for checkpoints")
    batches = StreamingBatches(corpus, tokenizer, StreamSettings.from_config(cfg), process_index=process_index,
                               process_count=process_count, repeat_share=d.get("repeat_share", 0.0),
                               repeat_length=d.get("repeat_length", 64))
    val = validation_tokens(corpus, tokenizer, int(d.get("streaming_validation_documents", 2000)), seq_len=d.seq_len)
    return batches, val


def count_tokens(corpus, tokenizer, split: str = "train") -> np.ndarray:
    """int64[V]: how often each id occurs in the split's bos-separated stream, in one read of the
    split and nothing written (what the cached pipeline counts in its .npy)."""
    from lexi.data.stream_packing import EncodeDocuments

    logging.getLogger("lexi").warning("counting the token ids of the whole %s split of %s (one full read)", split,
                                      corpus.name)
    encode, counts = EncodeDocuments(tokenizer), np.zeros(tokenizer.vocab_size, np.int64)
    docs = corpus.documents(split)
    while group := list(itertools.islice(docs, _ENCODE_GROUP)):
        counts += np.bincount(encode(group), minlength=tokenizer.vocab_size)
    return counts
