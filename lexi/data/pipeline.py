"""Corpus -> cached token stream, and the batch machinery training and eval use.

`build_token_stream` encodes every document of a split, puts the tokenizer's bos before
each and concatenates them into one int32 stream, cached as .npy and memory-mapped, so a
corpus is encoded once per tokenizer and large streams never need to fit in memory.
Batching lives in packing.py and prefetching in prefetch.py; both are re-exported here.
This is config.data.input_pipeline = "cached", the default; corpora too large to tokenize
before step 1 use the streaming pipeline instead (streaming.py).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from lexi.data.corpus import check_split
from lexi.data.packing import BATCH_KEYS, Batches, check_length, eval_windows, pack, segments
from lexi.data.prefetch import Prefetcher
from lexi.errors import UserError

log = logging.getLogger("lexi")

STREAM_FORMAT = 2  # bump when the stream layout or an encoding changes, so old caches are not reused (2: char SUBs NUL/STX/ETX)
_ENCODE_CHARS = 4_000_000  # documents are encoded in groups of about this many characters
_COPY_TOKENS = 1 << 24


def stream_cache_path(corpus, split: str, tokenizer, cache_dir: str | os.PathLike) -> Path:
    """Where the stream of (corpus, split, tokenizer) is cached."""
    ident = f"{corpus.fingerprint()}|{split}|{tokenizer.fingerprint()}|format={STREAM_FORMAT}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", corpus.name)
    return Path(cache_dir) / "streams" / f"{stem}-{split}-{tokenizer.name}-{key}.npy"


def build_token_stream(corpus, split: str, tokenizer, cache_dir: str | os.PathLike,
                       seq_len: Optional[int] = None) -> np.ndarray:
    """int32[N] memory-mapped stream: bos, doc 1, bos, doc 2, ... Built once, then loaded
    from the cache. With `seq_len`, a stream shorter than one sequence is a UserError."""
    check_split(split)
    path = stream_cache_path(corpus, split, tokenizer, cache_dir)
    tokens = _load(path)
    if tokens is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _build(corpus, split, tokenizer, path)
        tokens = _load(path)
    if seq_len is not None:
        check_length(len(tokens), seq_len, f"the {split} split of corpus {corpus.name!r}")
    return tokens


def _load(path: Path) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        tokens = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:  # a damaged cache file is rebuilt, not fatal
        log.warning("token cache %s is unreadable (%s); rebuilding it", path, e)
        return None
    if tokens.dtype != np.int32 or tokens.ndim != 1:
        log.warning("token cache %s has dtype %s, shape %s; rebuilding it", path, tokens.dtype, tokens.shape)
        return None
    return tokens


def _groups(docs: Iterator[str]) -> Iterator[list[str]]:
    """Documents in groups of about _ENCODE_CHARS, for batched (multithreaded) encoding."""
    group, size = [], 0
    for doc in docs:
        group.append(doc)
        size += len(doc)
        if size >= _ENCODE_CHARS:
            yield group
            group, size = [], 0
    if group:
        yield group


def _build(corpus, split: str, tokenizer, path: Path) -> None:
    t0 = time.perf_counter()
    replaced0 = getattr(tokenizer, "replaced_count", 0)
    bos = np.asarray([tokenizer.bos_id], dtype=np.int32)
    fd, raw_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".raw")
    n_tokens = n_docs = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            for group in _groups(corpus.documents(split)):
                try:
                    encoded = tokenizer.encode_batch_np(group)
                except UserError as e:  # a tokenizer that refuses text it cannot represent (corpus_chars)
                    raise UserError(f"the {split} split of corpus {corpus.name!r}: {e}") from None
                for ids in encoded:
                    bos.tofile(raw)
                    np.asarray(ids, dtype=np.int32).tofile(raw)
                    n_tokens += 1 + len(ids)
                n_docs += len(group)
        if n_docs == 0:
            raise UserError(f"the {split} split of corpus {corpus.name!r} has no documents")
        _raw_to_npy(Path(raw_name), n_tokens, path)
    finally:
        if os.path.exists(raw_name):
            os.unlink(raw_name)
    replaced = getattr(tokenizer, "replaced_count", 0) - replaced0
    if replaced:
        log.warning("%s tokenizer replaced %d characters it cannot represent in the %s split of %s",
                    tokenizer.name, replaced, split, corpus.name)
    log.info("%s/%s: %d documents -> %d %s tokens in %.1fs (cached at %s)", corpus.name, split, n_docs,
             n_tokens, tokenizer.name, time.perf_counter() - t0, path)


def _raw_to_npy(raw: Path, n_tokens: int, path: Path) -> None:
    """Raw int32 file -> .npy at `path`, atomically (temp file + os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npy")
    os.close(fd)
    try:
        src = np.memmap(raw, dtype=np.int32, mode="r", shape=(n_tokens,))
        dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(n_tokens,))
        for lo in range(0, n_tokens, _COPY_TOKENS):
            dst[lo: lo + _COPY_TOKENS] = src[lo: lo + _COPY_TOKENS]
        dst.flush()
        del src, dst
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


__all__ = ["BATCH_KEYS", "Batches", "Prefetcher", "build_token_stream", "eval_windows", "pack", "segments",
           "stream_cache_path"]
