"""Shards: what the streaming pipeline divides between processes and reads from a saved position.

A `FileShard` is one file of a text_files corpus (.jsonl, .txt, either optionally .gz), read
from a byte offset of its decompressed content, so a resumed run reopens each file where it
stopped: a seek for plain files, a decompression up to the offset for .gz files (the cost of
one file, never of the corpus). A `CorpusShard` is every `count`-th document of any other
corpus (kjv, python_code, mixture; tfds only for ZeTT's text, as training reads its records by
index, tfds_source.py): small corpora, which resume by reading up to their position again. Both
yield only the documents of the asked-for split, by the same rule as the cached pipeline, so the
union over all processes' shards is exactly that split. A bad .jsonl line stops the read or is
skipped (config.data.streaming_skip_bad_lines; text_files.BadLines).

`process_shards` decides who reads what: whole files, round-robin over the sorted list, so
processes never share a file; or, for the other corpora, every process its own stride.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Optional

from lexi.data.corpus import Corpus, check_split, decode_utf8, in_validation
from lexi.data.text_files import (GZIP_ERRORS, BadLines, TextFiles, damaged, is_jsonl, json_text, open_binary,
                                  read_bytes)
from lexi.errors import UserError

log = logging.getLogger("lexi")

# (text, offset, line) after a document: `offset` is where reading resumes (bytes of a file, documents
# of a corpus), `line` the last line read (for messages)
Item = tuple[str, int, int]


class FileShard:
    """The `split` documents of one text_files file."""

    def __init__(self, path: Path, *, text_field: str, split: str, val_fraction: float,
                 bad_lines: Optional[BadLines] = None):
        check_split(split)
        self.path, self.text_field, self.val_fraction = Path(path), text_field, val_fraction
        self.bad_lines = bad_lines or BadLines()
        self.want_validation = split == "validation"
        self.name = str(self.path)

    def _wanted(self, text: str) -> bool:
        if not text:
            return False
        if self.val_fraction == 0:  # no hashing when nothing is held out
            return not self.want_validation
        return in_validation(text, self.val_fraction) == self.want_validation

    def read(self, offset: int = 0, line: int = 0) -> Iterator[Item]:
        yield from (self._jsonl(offset, line) if is_jsonl(self.path) else self._txt(offset))

    def _txt(self, offset: int) -> Iterator[Item]:
        if offset:  # the one document was read before
            return
        text, bad = decode_utf8(read_bytes(self.path))
        if not text.strip():
            raise UserError(f"{self.path} is empty; remove it or fix config.data.files")
        self._replaced(bad)
        if self._wanted(text):
            yield text, 1, 1

    def _jsonl(self, offset: int, line: int) -> Iterator[Item]:
        start, bad_total, objects, skipped = offset, 0, 0, 0
        with open_binary(self.path) as f:
            try:
                if offset:
                    f.seek(offset)
                for raw in f:
                    offset += len(raw)
                    line += 1
                    text, bad = decode_utf8(raw)
                    bad_total += bad
                    if not text.strip():
                        continue
                    try:
                        doc = json_text(self.path, line, text, self.text_field)
                    except UserError as e:
                        self.bad_lines.handle(e)
                        skipped += 1
                        continue
                    objects += 1
                    if self._wanted(doc):
                        yield doc, offset, line
            except GZIP_ERRORS + (OSError,) as e:
                raise damaged(self.path, e, line) from e
        self._replaced(bad_total)
        if objects == 0 and start == 0:
            if skipped:
                raise self.bad_lines.all_bad(self.path, skipped)
            raise UserError(f"{self.path} is empty (no JSON lines); remove it or fix config.data.files")

    def _replaced(self, n: int) -> None:
        if n:
            log.warning("%s: replaced %d invalid UTF-8 sequence(s) with U+FFFD", self.path, n)


class CorpusShard:
    """Documents index, index + count, index + 2 count, ... of a corpus' split."""

    def __init__(self, corpus: Corpus, split: str, index: int = 0, count: int = 1):
        check_split(split)
        self.corpus, self.split, self.index, self.count = corpus, split, index, count
        self.name = f"{corpus.name} documents {index}::{count}"

    def read(self, offset: int = 0, line: int = 0) -> Iterator[Item]:
        for i, doc in enumerate(self.corpus.documents(self.split)):
            if i >= offset and i % self.count == self.index:
                yield doc, i + 1, i + 1


def process_shards(corpus: Corpus, split: str, process_index: int, process_count: int) -> list:
    """The shards process `process_index` of `process_count` reads; disjoint between processes,
    together the whole split. A process left without a file is a UserError."""
    if not isinstance(corpus, TextFiles):
        return [CorpusShard(corpus, split, process_index, process_count)]
    if corpus.max_documents:
        raise UserError("config.data.max_documents does not apply to input_pipeline=streaming with text_files "
                        "(it would need every process to count every file); list fewer files in config.data.files")
    mine = corpus.files[process_index::process_count]
    if not mine:
        raise UserError(f"config.data.files matches {len(corpus.files)} file(s) for {process_count} processes, so "
                        f"process {process_index} has none to read: input_pipeline=streaming gives every process whole "
                        f"files; split the corpus into at least {process_count} files (several per process mix better) "
                        "or run fewer processes")
    return [FileShard(p, text_field=corpus.text_field, split=split, val_fraction=corpus.val_fraction,
                      bad_lines=corpus.bad_lines) for p in mine]
