"""Glyph embedding tables: every token's picture -> full-rank PCA -> unit rows (Bochkov 2025).

`glyph_table(tokenizer, cell_px=32, cache_dir=None)` -> float32 [vocab_size, cell_px**2]:
  1. `token_displays`: what each id stands for: text, a byte, a special token or nothing.
  2. Every distinct character of the text tokens is drawn once (lexi.glyph.render);
     a token of n characters is its characters' cells side by side, reduced back to one
     cell by nearest neighbour (numpy, no further drawing). Bytes, specials and unused
     ids get their own boxes.
  3. Every distinct token gets a distinct picture: where pictures coincide (homoglyphs
     such as Latin A / Greek Alpha / Cyrillic A in Unifont, CJK compatibility ideographs,
     n-grams that the reduction made equal), all but the lowest id get a variant mark
     (their rank in the group, in binary, XORed into the bottom design row).
  4. Full-rank PCA: centre, rotate onto all principal axes (sorted by variance,
     so a prefix of the columns is the best rank-k summary), no reduction; then each
     row is scaled to unit L2 norm (a zero row, impossible unless a row equals the mean,
     would become the last axis).
Cached as .npz under cache_dir/glyph/ (default $LEXI_CACHE or ~/.cache/lexi), keyed by the
font files' bytes, the tokenizer's fingerprint, cell_px and FORMAT.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np

from lexi.files import atomic_file
from lexi.glyph import render
from lexi.glyph.fonts import font_digest, resolve_fonts

FORMAT = 1  # bump when the drawing changes: old cache entries are then ignored
_MARK_ROWS = (15, 0, 14, 1, 13, 2)  # design rows tried in turn for variant marks


class Display(NamedTuple):
    """What an id stands for: kind "text" (value: the string), "byte" (value: 0-255),
    "special" (value: "pad", "bos", "eos", "unk" or None) or "unused" (value: None)."""

    kind: str
    value: Any


def token_displays(tokenizer) -> list[Display]:
    """Display of every id, as the tokenizer says it (`Tokenizer.token_info`)."""
    return [Display(*tokenizer.token_info(i)) for i in range(int(tokenizer.vocab_size))]


def _escape(s: str) -> str:
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c.isprintable():
            out.append(c)
        else:
            cp = ord(c)
            named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c)
            out.append(named or (f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"))
    return "".join(out)


def display_label(d: Display, token_id: int) -> str:
    """A printable, unambiguous label: the text with non-printable characters escaped
    ("\\n", "\\x00", "\\u200b"), or "<0x41>", "<pad>", "<special 0x5>", "<unused 0xD800>"."""
    if d.kind == "text":
        return _escape(d.value)
    if d.kind == "byte":
        return f"<0x{d.value:02X}>"
    if d.kind == "special":
        return f"<{d.value}>" if d.value else f"<special 0x{token_id:X}>"
    return f"<unused 0x{token_id:X}>"


def token_labels(tokenizer) -> list[str]:
    return [display_label(d, i) for i, d in enumerate(token_displays(tokenizer))]


# ---------------------------------------------------------------------- building


def build_bitmaps(tokenizer, cell_px: int, fonts) -> tuple[np.ndarray, dict]:
    """bool [V, cell, cell] pictures of every token (before variant marks) and statistics."""
    cell = render.check_cell(cell_px)
    displays = token_displays(tokenizer)
    v = len(displays)
    chars = sorted({c for d in displays if d.kind == "text" for c in d.value})
    renderer = render.CharRenderer(fonts, cell)
    cells, sources, blank = renderer.render([ord(c) for c in chars])
    index = {c: k for k, c in enumerate(chars)}
    coverage = collections.Counter()
    out = np.zeros((v, cell, cell), bool)
    by_len: dict[int, list[int]] = collections.defaultdict(list)
    for i, d in enumerate(displays):
        if d.kind == "text" and d.value:
            by_len[len(d.value)].append(i)
            for c in d.value:
                coverage[sources[index[c]]] += 1
        elif d.kind == "byte":
            out[i] = render.byte_box(d.value, cell)
            coverage["byte_box"] += 1
        elif d.kind == "special":
            out[i] = render.special_box(d.value, i, cell)
            coverage["special_box"] += 1
        else:
            out[i] = render.unused_box(i, cell)
            coverage["unused_box"] += 1
    for n, ids in by_len.items():
        idx = np.asarray([[index[c] for c in displays[i].value] for i in ids])  # [T, n]
        cols = render.nearest(n * cell, cell)  # columns of the n-cell strip kept
        which, col = cols // cell, cols % cell
        out[ids] = cells[idx[:, which], :, col].transpose(0, 2, 1)  # [T, cell(col), cell(row)] -> rows first
    roles = ("unifont", "unifont_upper", "fallback_font", "control_picture", "hex_box",
             "byte_box", "special_box", "unused_box")
    stats = {"coverage": {k: int(coverage.get(k, 0)) for k in roles},
             "distinct_chars": len(chars), "blank_glyphs": len(blank),
             "blank_glyph_examples": [f"U+{cp:04X}" for cp in blank[:24]]}
    return out, stats


def _row_keys(bitmaps: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in np.packbits(bitmaps.reshape(len(bitmaps), -1), axis=1)]


def disambiguate(bitmaps: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Give every row a distinct picture: in each group of equal pictures all but the lowest
    id get a variant mark. Returns (bitmaps, duplicates before, rows marked)."""
    raw = len(bitmaps) - len(set(_row_keys(bitmaps)))
    marked: set[int] = set()
    for row in _MARK_ROWS:
        groups = collections.defaultdict(list)
        for i, k in enumerate(_row_keys(bitmaps)):
            groups[k].append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            break
        for g in clashes:
            for rank, i in enumerate(g[1:], start=1):
                bitmaps[i] = render.variant_mark(bitmaps[i], rank % (1 << render.DESIGN) or 1, row)
                marked.add(i)
    return bitmaps, raw, len(marked)


def pca_rows(bitmaps: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Full-rank PCA of the flattened pictures (columns by decreasing variance, each
    principal axis signed so that its largest entry is positive), then unit rows.
    float32 [V, cell**2]. With fewer rows than pixels only V axes carry variance: the
    SVD of the centred rows gives them and the other columns are 0."""
    v = len(bitmaps)
    x = bitmaps.reshape(v, -1)
    d = x.shape[1]
    if v < d:
        xc = x.astype(np.float64) - x.mean(0, dtype=np.float64)
        u, sv, axes = np.linalg.svd(xc, full_matrices=False)  # axes: [v, d], rows = principal axes
        big = np.argmax(np.abs(axes), axis=1)
        sign = np.sign(axes[np.arange(v), big])
        out = np.zeros((v, d), np.float32)
        out[:, :v] = (u * (sv * sign))
        return _unit_rows(out)
    gram = np.zeros((d, d), np.float64)
    for lo in range(0, v, chunk):  # 0/1 entries: float32 sums are exact integers (< 2**24)
        xc = x[lo:lo + chunk].astype(np.float32)
        gram += xc.T @ xc
    mean = x.sum(0, dtype=np.float64) / v
    cov = gram / v - np.outer(mean, mean)
    _, vecs = np.linalg.eigh(cov)
    vecs = vecs[:, ::-1]
    big = np.argmax(np.abs(vecs), axis=0)
    vecs = vecs * np.sign(vecs[big, np.arange(d)])
    rot = np.ascontiguousarray(vecs, dtype=np.float32)
    shift = (mean @ vecs).astype(np.float32)
    out = np.empty((v, d), np.float32)
    for lo in range(0, v, chunk):
        out[lo:lo + chunk] = x[lo:lo + chunk].astype(np.float32) @ rot - shift
    return _unit_rows(out)


def _unit_rows(out: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64))[:, None]
    zero = norms[:, 0] < 1e-6
    out /= np.where(zero[:, None], 1.0, norms)
    out[zero] = 0.0
    out[zero, -1] = 1.0
    return out


def count_duplicates(table: np.ndarray) -> int:
    return len(table) - len({r.tobytes() for r in np.ascontiguousarray(table)})


def default_cache_dir() -> Path:
    return Path(os.environ.get("LEXI_CACHE") or Path.home() / ".cache" / "lexi")


def glyph_table_with_stats(tokenizer, cell_px: int = 32, cache_dir: Optional[str | os.PathLike] = None, *,
                           unifont=None, unifont_upper=None, fallback_font=None,
                           use_cache: bool = True) -> tuple[np.ndarray, dict]:
    """The table and its statistics: duplicates (rows equal to an earlier row; 0 unless
    the marks failed), vocab_size, dim, coverage (characters drawn from each font, as
    control pictures or as hex boxes, plus byte / special / unused boxes), raw_duplicates
    (equal pictures before variant marks), marked, build_seconds (of the cold build),
    seconds (this call), cache_hit, cache_path. Font paths: see lexi.glyph.fonts."""
    t0 = time.perf_counter()
    cell = render.check_cell(cell_px)
    fonts, notes = resolve_fonts(unifont, unifont_upper, fallback_font)
    key = hashlib.sha256(json.dumps({
        "fonts": [[f.role, font_digest(f.path)] for f in fonts], "tokenizer": tokenizer.fingerprint(),
        "cell_px": cell, "format": FORMAT}, sort_keys=True).encode()).hexdigest()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / "glyph" / f"{getattr(tokenizer, 'name', 'tok')}_{tokenizer.vocab_size}_{cell}px_{key[:24]}.npz"
    table = stats = None
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                stats = json.loads(str(z["stats"]))
            table = _read_stored_member(path, "embeddings.npy")
            if table.shape != (tokenizer.vocab_size, cell * cell) or table.dtype != np.float32:
                raise ValueError(f"shape {table.shape}, dtype {table.dtype}")
            stats["cache_hit"] = True
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            warnings.warn(f"glyph table cache {path} is unreadable ({e}); building it again")
            table = stats = None
    if table is None:
        bitmaps, stats = build_bitmaps(tokenizer, cell, fonts)
        bitmaps, raw, marked = disambiguate(bitmaps)
        table = pca_rows(bitmaps)
        stats.update(vocab_size=int(tokenizer.vocab_size), dim=cell * cell, cell_px=cell,
                     duplicates=count_duplicates(table), raw_duplicates=raw, marked=marked,
                     fonts={f.role: str(f.path) for f in fonts}, font_notes=notes,
                     tokenizer=getattr(tokenizer, "name", ""), build_seconds=round(time.perf_counter() - t0, 3))
        if use_cache:
            _save(path, table, stats)
        stats["cache_hit"] = False
    stats["cache_path"] = str(path) if use_cache else None
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    if "unifont" not in stats["fonts"]:
        warnings.warn(f"GNU Unifont is not available ({'; '.join(stats['font_notes'])}); glyphs are drawn with "
                      f"{stats['fonts'].get('fallback_font') or stats['fonts']}. Coverage: {stats['coverage']}. "
                      "Install fonts-unifont or set LEXI_UNIFONT for the paper's table.")
    return table, stats


def glyph_table(tokenizer, cell_px: int = 32, cache_dir: Optional[str | os.PathLike] = None,
                **kwargs) -> np.ndarray:
    """float32 [tokenizer.vocab_size, cell_px**2], unit rows, cached (see the module docstring)."""
    return glyph_table_with_stats(tokenizer, cell_px, cache_dir, **kwargs)[0]


def _read_stored_member(path: Path, name: str) -> np.ndarray:
    """An uncompressed .npy member of a .npz read straight from its offset in the file: one
    copy instead of np.load's chunked reads through zipfile (a 256 MB table loads 2-3x faster)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path) as z:
            return z[name[:-4]]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # zip local file header: fixed part, then name and extra field
        if local[:4] != b"PK\x03\x04":
            raise ValueError("bad zip member header")
        f.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
               + int.from_bytes(local[28:30], "little"))
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = header(f)
        if fortran or dtype.hasobject:
            raise ValueError("unexpected array layout")
        count = int(np.prod(shape))
        data = np.fromfile(f, dtype=dtype, count=count)
        if data.size != count:
            raise ValueError(f"truncated: {data.size} of {count} values")
        return data.reshape(shape)


def _save(path: Path, table: np.ndarray, stats: dict) -> None:
    """Write the .npz atomically: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        np.savez(f, embeddings=table, stats=np.asarray(json.dumps(stats)))


__all__ = ["Display", "token_displays", "token_labels", "display_label", "build_bitmaps", "disambiguate",
           "pca_rows", "glyph_table", "glyph_table_with_stats", "FORMAT"]
