"""The file `lexi glyphs --out table.npz` writes, and its reader.

What each row stands for is stored exactly, not as a display string: a display string
cannot tell the newline token from a learned two-character token backslash + n, and numpy's
fixed-width strings drop trailing NULs. Arrays (no pickles):
  embeddings     float32 [V, D]  the glyph table
  token_kinds    str [V]         text | byte | special | unused
  token_values   uint8 [N]       each id's value back to back: text as UTF-8, a byte as itself,
                                 a special's name as ASCII, nothing for unused ids
  token_offsets  int64 [V + 1]   id i's value is token_values[offsets[i]:offsets[i + 1]]
  labels         str [V]         escaped, printable labels ("\\n", "<0x41>", "<bos>") for showing only
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lexi.glyph.table import Display, display_label, token_displays


def _value_bytes(d: Display) -> bytes:
    if d.kind == "text":
        return d.value.encode("utf-8", "surrogatepass")
    if d.kind == "byte":
        return bytes([d.value])
    if d.kind == "special":
        return (d.value or "").encode("ascii")
    return b""


def _value(kind: str, b: bytes) -> Any:
    """The inverse of _value_bytes."""
    if kind == "text":
        return b.decode("utf-8", "surrogatepass")
    if kind == "byte":
        return b[0]
    if kind == "special":
        return b.decode("ascii") or None
    return None


def write(path: Path, table: np.ndarray, tokenizer) -> None:
    displays = token_displays(tokenizer)
    values = [_value_bytes(d) for d in displays]
    offsets = np.zeros(len(values) + 1, np.int64)
    offsets[1:] = np.cumsum([len(v) for v in values])
    with open(path, "wb") as f:
        np.savez(f, embeddings=table, token_kinds=np.asarray([d.kind for d in displays], dtype=str),
                 token_values=np.frombuffer(b"".join(values), np.uint8), token_offsets=offsets,
                 labels=np.asarray([display_label(d, i) for i, d in enumerate(displays)], dtype=str))


def read(path: Path) -> tuple[np.ndarray, list[Display]]:
    """(embeddings, what each id stands for) from a file `write` made."""
    with np.load(path) as z:
        emb, kinds, raw, off = z["embeddings"], z["token_kinds"], z["token_values"].tobytes(), z["token_offsets"]
    return emb, [Display(kind, _value(kind, raw[off[i]:off[i + 1]])) for i, kind in enumerate(kinds.tolist())]
