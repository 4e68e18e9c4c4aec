"""`--text-file`: the one convention `lexi eval` and `lexi zett eval` read held-out text by.

A .jsonl or .jsonl.gz file holds one document per line (its "text" field); any other file is
plain text whose documents are separated by blank lines (a file without one is one
document). Each document is then read as a corpus document is: the tokenizer's bos, then its
tokens, so a model meets held-out text exactly as it met its training text.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lexi.data.corpus import decode_utf8
from lexi.data.text_files import is_jsonl, json_text, open_binary, read_bytes
from lexi.errors import UserError

HELP = ("held-out text instead of the validation split: a .jsonl/.jsonl.gz file (one document per "
        "line, its \"text\" field) or plain text whose documents are separated by blank lines; each "
        "document starts with bos, as in training")
_BLANK_LINES = re.compile(r"\n(?:[ \t\r]*\n)+")  # one or more blank lines; the next line keeps its indent


def read_documents(path: str | Path) -> list[str]:
    """The documents of a `--text-file`, or a UserError if it is missing or holds no text."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--text-file {path} does not exist")
    if is_jsonl(path):
        with open_binary(path) as f:
            lines = [decode_utf8(raw)[0] for raw in f]
        docs = [json_text(path, n, line, "text") for n, line in enumerate(lines, 1) if line.strip()]
    else:
        docs = _BLANK_LINES.split(decode_utf8(read_bytes(path))[0])
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise UserError(f"--text-file {path} is empty")
    return docs


def document_tokens(docs: list[str], tokenizer) -> np.ndarray:
    """int32[N]: bos, doc 1, bos, doc 2, ...: the layout of a corpus split's token stream."""
    out = []
    for ids in tokenizer.encode_batch_np(docs):
        out += [np.asarray([tokenizer.bos_id], np.int32), np.asarray(ids, np.int32)]
    return np.concatenate(out)
