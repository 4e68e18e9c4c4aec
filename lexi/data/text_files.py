"""The `text_files` corpus: local .txt files (one document each) and .jsonl files (one
document per line, from `text_field`), each optionally gzip-compressed (a name ending in
.gz, e.g. `shard-00001.jsonl.gz`). Files with other suffixes are read as text.

Invalid UTF-8 is replaced with U+FFFD and reported with a warning rather than stopping a
run; everything else wrong with the files is a UserError naming the file (and line).
"""
from __future__ import annotations

import glob
import gzip
import json
import logging
import os
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterator

from lexi.data.corpus import HashSplitCorpus, decode_utf8
from lexi.errors import UserError

log = logging.getLogger("lexi")
_GLOB_CHARS = set("*?[")
# what a damaged or truncated gzip file raises while it is read
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def is_jsonl(path: Path) -> bool:
    """One document per line (.jsonl, .jsonl.gz), rather than one per file."""
    return path.name.endswith((".jsonl", ".jsonl.gz"))


def open_binary(path: Path):
    """The file's bytes, decompressed when its name ends in .gz; a UserError if it cannot be opened."""
    try:
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e


def damaged(path: Path, err: Exception, line: int = 0) -> UserError:
    """The message for a file that stops reading part-way (truncated or corrupt gzip, I/O error)."""
    where = f" after line {line}" if line else ""
    return UserError(f"{path} is damaged: reading it failed{where} ({type(err).__name__}: {err}); "
                     "replace the file or remove it from config.data.files")


def json_text(path: Path, n: int, line: str, text_field: str) -> str:
    """The `text_field` string of .jsonl line number `n`, or a UserError naming the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{n}: not valid JSON ({e.msg}); every line of a .jsonl must be one object") from e
    if not isinstance(obj, dict) or text_field not in obj:
        have = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise UserError(f"{path}:{n}: no {text_field!r} field (found {have}); set "
                        "--config.data.text_field to the field that holds the text")
    text = obj[text_field]
    if not isinstance(text, str):
        raise UserError(f"{path}:{n}: field {text_field!r} is a {type(text).__name__}, not a string")
    return text


class BadLines:
    """What a .jsonl line that is not an object with a string `text_field` does: stop the run with its
    message (the default), or, with config.data.streaming_skip_bad_lines, be skipped with a warning
    that carries a running count (the first 10, then every 1,000th; a line read again in a later
    epoch counts again), so a few broken lines in a large scraped corpus do not stop a long run.
    One per corpus, shared by its files."""

    WARN_FIRST, WARN_EVERY = 10, 1000

    def __init__(self, skip: bool = False):
        self.skip, self.count = bool(skip), 0

    def handle(self, err: UserError) -> None:
        if not self.skip:
            raise err
        self.count += 1
        if self.count <= self.WARN_FIRST or self.count % self.WARN_EVERY == 0:
            log.warning("skipped a bad line (%d so far, config.data.streaming_skip_bad_lines=True): %s",
                        self.count, err)

    def all_bad(self, path: Path, lines: int) -> UserError:
        """The error for a file whose every line was skipped: a wrong text_field more likely than bad data."""
        return UserError(f"{path}: all {lines} line(s) are bad and were skipped; check config.data.text_field "
                         "and the file's format")


def expand_files(patterns: str) -> list[Path]:
    """Comma-separated globs (`**` recursive) -> sorted unique files, or a UserError."""
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    if not pats:
        raise UserError("corpus text_files needs --config.data.files=GLOB, e.g. 'data/*.txt,more/**/*.jsonl'")
    files: list[str] = []
    for pat in pats:
        pat = os.path.expanduser(pat)
        if not _GLOB_CHARS & set(pat):
            if not os.path.isfile(pat):
                raise UserError(f"config.data.files: {pat} does not exist or is not a file")
            files.append(pat)
            continue
        found = sorted(f for f in glob.glob(pat, recursive=True) if os.path.isfile(f))
        if not found:
            raise UserError(f"config.data.files: the glob {pat!r} matches no files")
        files += found
    return [Path(f) for f in dict.fromkeys(files)]


class TextFiles(HashSplitCorpus):
    """Split key: the document's text, so the split does not depend on where files live
    and duplicate documents land in the same split."""

    name = "text_files"

    def __init__(self, patterns: str, text_field: str = "text", skip_bad_lines: bool = False, **kw):
        super().__init__(**kw)
        self.text_field = text_field
        self.bad_lines = BadLines(skip_bad_lines)
        self.files = expand_files(patterns)
        self.replaced_count = 0  # invalid UTF-8 sequences replaced in the last full pass

    def _items(self) -> Iterator[tuple[str, str]]:
        self.replaced_count = 0
        for path in self.files:
            docs = self._jsonl(path) if is_jsonl(path) else self._txt(path)
            for text in docs:
                yield text, text

    def _replaced(self, path: Path, n: int, where: str = "") -> None:
        if n:
            self.replaced_count += n
            warnings.warn(f"{path}{where}: replaced {n} invalid UTF-8 sequence(s) with U+FFFD", stacklevel=2)

    def _txt(self, path: Path) -> Iterator[str]:
        text, bad = decode_utf8(read_bytes(path))
        if not text.strip():
            raise UserError(f"{path} is empty; remove it or fix config.data.files")
        self._replaced(path, bad)
        yield text

    def _jsonl(self, path: Path) -> Iterator[str]:
        n_docs, bad_total, n, skipped = 0, 0, 0, 0
        with open_binary(path) as f:
            try:
                for n, raw in enumerate(f, 1):
                    line, bad = decode_utf8(raw)
                    bad_total += bad
                    if not line.strip():
                        continue
                    try:
                        text = json_text(path, n, line, self.text_field)
                    except UserError as e:
                        self.bad_lines.handle(e)
                        skipped += 1
                        continue
                    n_docs += 1
                    if text:
                        yield text
            except GZIP_ERRORS + (OSError,) as e:
                raise damaged(path, e, n) from e
        self._replaced(path, bad_total)
        if n_docs == 0:
            if skipped:
                raise self.bad_lines.all_bad(path, skipped)
            raise UserError(f"{path} is empty (no JSON lines); remove it or fix config.data.files")

    def _content_id(self) -> Any:
        out = []
        for p in self.files:
            st = _stat(p)
            out.append([str(p.resolve()), st.st_size, st.st_mtime_ns] + (["gzip"] if p.name.endswith(".gz") else []))
        return {"files": out, "text_field": self.text_field}


def read_bytes(path: Path) -> bytes:
    """The whole (decompressed) file, or a UserError naming it."""
    with open_binary(path) as f:
        try:
            return f.read()
        except GZIP_ERRORS + (OSError,) as e:
            raise damaged(path, e) from e


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}; it was listed by config.data.files") from e
