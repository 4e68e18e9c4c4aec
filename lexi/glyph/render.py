"""Character cells: each character drawn once, centred in a cell_px x cell_px cell, binarised.

Drawing rules (cells are bool [cell_px, cell_px], True = ink):
  - a character in a font of the chain (lexi.glyph.fonts) is drawn with that font at the
    size whose line height (ascent + descent) fills the cell (Unifont: cell_px = 2 x its
    16-px grid at 32 px), its advance box centred; zero-width glyphs (combining marks)
    are centred by their ink; a glyph larger than the cell is squeezed into it (nearest).
  - C0 controls, space, DEL, NBSP and the ideographic space are drawn through a visible
    picture in reverse video (so they differ from the picture character itself):
    U+2400 + c for C0, U+2420 for space, U+2421 for DEL, U+237D for NBSP, U+2423 for
    U+3000. Unifont draws all of them blank or as boxes otherwise (space and newline alike).
  - a character no font has, or one whose glyph is blank (the U+2000 spaces, U+202F,
    U+205F, U+FFA0, ...), is a hex box: a frame holding its code point in hex digits.
Tokens that are not text get boxes from the same small built-in digit font: byte boxes
(dashed frame, two hex digits), special boxes (solid, the name knocked out: PAD, BOS, EOS,
UNK, or the id in hex) and unused-id boxes (dotted frame, the id in hex).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from lexi.errors import UserError
from lexi.glyph.fonts import FontSource, code_points

DESIGN = 16  # boxes are designed on a 16 x 16 grid (Unifont's), scaled by cell_px / 16

# Blank or invisible characters -> the character whose glyph stands for them (in reverse video).
PICTURES = {**{c: 0x2400 + c for c in range(0x20)}, 0x20: 0x2420, 0x7F: 0x2421, 0xA0: 0x237D, 0x3000: 0x2423}

_MINI_ROWS = {  # 3 x 5 letters and digits for boxes
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"), "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"), "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"), "F": ("###", "#..", "##.", "#..", "#.."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"), "N": ("#.#", "###", "###", "###", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."), "P": ("##.", "#.#", "##.", "#..", "#.."),
    "S": (".##", "#..", ".#.", "..#", "##."), "U": ("#.#", "#.#", "#.#", "#.#", "###"),
}
MINI = {ch: np.array([[c == "#" for c in row] for row in rows]) for ch, rows in _MINI_ROWS.items()}
SPECIAL_LABELS = {"pad": "PAD", "bos": "BOS", "eos": "EOS", "unk": "UNK"}


def check_cell(cell_px: int) -> int:
    if not isinstance(cell_px, (int, np.integer)) or cell_px < DESIGN or cell_px % DESIGN:
        raise UserError(f"cell_px must be a multiple of {DESIGN} (32 -> 1024 dims, 64 -> 4096), got {cell_px!r}")
    return int(cell_px)


def _upscale(design: np.ndarray, cell: int) -> np.ndarray:
    s = cell // DESIGN
    return design.repeat(s, axis=0).repeat(s, axis=1)


def _frame(style: str) -> np.ndarray:
    d = np.zeros((DESIGN, DESIGN), bool)
    i = np.arange(DESIGN)
    on = {"solid": np.ones(DESIGN, bool), "dashed": (i // 2) % 2 == 0, "dotted": i % 2 == 0}[style]
    d[0, on] = d[-1, on] = d[on, 0] = d[on, -1] = True
    return d


def _text(d: np.ndarray, text: str, y: int) -> None:
    """XOR `text` in the mini font onto design grid `d`, centred, top row y."""
    x = (DESIGN - (4 * len(text) - 1)) // 2
    for ch in text:
        d[y:y + 5, x:x + 3] ^= MINI[ch]
        x += 4


def _two_rows(d: np.ndarray, digits: str) -> np.ndarray:
    half = math.ceil(len(digits) / 2)
    _text(d, digits[:half], 2)
    _text(d, digits[half:], 9)
    return d


def _hex(i: int) -> str:
    return f"{i:04X}" if i <= 0xFFFF else f"{i:06X}"


def hex_box(cp: int, cell: int) -> np.ndarray:
    """A code point with no visible glyph: solid frame, its hex digits in two rows."""
    return _upscale(_two_rows(_frame("solid"), _hex(cp)), cell)


def byte_box(b: int, cell: int) -> np.ndarray:
    """A byte-fallback token: dashed frame, two hex digits."""
    d = _frame("dashed")
    _text(d, f"{b:02X}", 5)
    return _upscale(d, cell)


def special_box(name: str | None, token_id: int, cell: int) -> np.ndarray:
    """A special token: filled box with its name (or id) knocked out."""
    d = np.ones((DESIGN, DESIGN), bool)
    if name in SPECIAL_LABELS:
        _text(d, SPECIAL_LABELS[name], 5)
    else:
        _two_rows(d, _hex(token_id))
    return _upscale(d, cell)


def unused_box(token_id: int, cell: int) -> np.ndarray:
    """An id that stands for nothing (an unused n-gram slot): dotted frame, the id in hex."""
    return _upscale(_two_rows(_frame("dotted"), _hex(token_id)), cell)


def variant_mark(bitmap: np.ndarray, rank: int, row: int) -> np.ndarray:
    """`bitmap` with the binary digits of rank (1..65535) XORed into design row `row`: the
    mark that tells apart tokens whose drawings coincide (homoglyphs, squeezed n-grams)."""
    s = bitmap.shape[0] // DESIGN
    out = bitmap.copy()
    for j in range(DESIGN):
        if rank >> j & 1:
            out[row * s:(row + 1) * s, j * s:(j + 1) * s] ^= True
    return out


class _Font:
    def __init__(self, source: FontSource, cell: int):
        from PIL import ImageFont

        self.role, self.path = source.role, source.path
        self.cmap = code_points(source.path)
        layout = ImageFont.Layout.BASIC
        try:
            size = cell
            font = ImageFont.truetype(str(source.path), size, layout_engine=layout)
            asc, desc = font.getmetrics()
            while asc + desc > cell and size > 1:  # fit the line height into the cell
                size = min(size - 1, int(size * cell / (asc + desc)))
                font = ImageFont.truetype(str(source.path), size, layout_engine=layout)
                asc, desc = font.getmetrics()
        except OSError as e:
            raise UserError(f"font {source.path} cannot be opened by Pillow ({e}); pass a .otf or .ttf file") from e
        self.font, self.ascent, self.descent = font, asc, desc


class CharRenderer:
    """Cells for characters, drawn once each with the first font of the chain that has them."""

    def __init__(self, fonts: Sequence[FontSource], cell_px: int):
        self.cell = check_cell(cell_px)
        self.fonts = [_Font(f, self.cell) for f in fonts]

    def _font_for(self, cp: int) -> int:
        for i, f in enumerate(self.fonts):
            if cp in f.cmap:
                return i
        return -1

    def render(self, cps: Sequence[int]) -> tuple[np.ndarray, list[str], list[int]]:
        """(cells bool [n, cell, cell], source of each: a font role, "control_picture" or
        "hex_box", and the code points whose glyph came out blank)."""
        cell = self.cell
        out = np.zeros((len(cps), cell, cell), bool)
        source = ["hex_box"] * len(cps)
        todo: dict[int, list[tuple[int, int]]] = {}
        for k, cp in enumerate(cps):
            target = PICTURES.get(cp, cp)
            f = self._font_for(target)
            if f < 0:
                out[k] = hex_box(cp, cell)
            else:
                todo.setdefault(f, []).append((k, target))
        blank = []
        for f, items in todo.items():
            cells = self._draw(self.fonts[f], [t for _, t in items])
            for (k, target), c in zip(items, cells):
                cp = cps[k]
                if not c.any():
                    blank.append(cp)
                    out[k] = hex_box(cp, cell)
                elif cp in PICTURES:
                    out[k], source[k] = ~c, "control_picture"
                else:
                    out[k], source[k] = c, self.fonts[f].role
        return out, source, sorted(blank)

    def _placement(self, font: _Font, ch: str) -> tuple[int, int] | None:
        """Pen position (left, baseline) inside the cell that centres the glyph, or None
        when its box is larger than the cell."""
        x0, y0, x1, y1 = font.font.getbbox(ch, anchor="ls")  # advance box united with the ink, pen at 0
        top, bottom = min(y0, -font.ascent), max(y1, font.descent)
        if x1 - x0 > self.cell or bottom - top > self.cell:
            return None
        return (self.cell - (x1 - x0)) // 2 - x0, (self.cell - (bottom - top)) // 2 - top

    def _draw(self, font: _Font, cps: Sequence[int]) -> list[np.ndarray]:
        """Cells of `cps` in `font`: drawn in batches on a sheet with a free cell around every
        cell, so ink that leaves its cell is noticed (those are drawn alone and squeezed)."""
        from PIL import Image, ImageDraw

        cell, per = self.cell, 32
        out: list[np.ndarray] = [np.zeros((cell, cell), bool)] * len(cps)
        alone = []
        for lo in range(0, len(cps), per * per):
            batch = cps[lo: lo + per * per]
            rows = -(-len(batch) // per)
            sheet = Image.new("L", (per * 2 * cell, rows * 2 * cell))
            draw = ImageDraw.Draw(sheet)
            placed = []
            for j, cp in enumerate(batch):
                pen = self._placement(font, chr(cp))
                if pen is None:
                    alone.append(lo + j)
                    continue
                r, c = divmod(j, per)
                x, y = c * 2 * cell + cell // 2 + pen[0], r * 2 * cell + cell // 2 + pen[1]
                draw.text((x, y), chr(cp), font=font.font, fill=255, anchor="ls")
                placed.append(j)
            ink = np.asarray(sheet) >= 128
            slots = ink.reshape(rows, 2 * cell, per, 2 * cell).transpose(0, 2, 1, 3).reshape(-1, 2 * cell, 2 * cell)
            h = cell // 2
            inside = slots[:, h:h + cell, h:h + cell]
            leaked = inside.sum(axis=(1, 2)) != slots.sum(axis=(1, 2))  # ink outside the box FreeType reported
            for j in placed:
                if leaked[j]:
                    alone.append(lo + j)
                else:
                    out[lo + j] = inside[j].copy()
        for k in alone:
            out[k] = self._draw_alone(font, chr(cps[k]))
        return out

    def _draw_alone(self, font: _Font, ch: str) -> np.ndarray:
        """One glyph on its own canvas; its box (advance, line height and ink) centred in the
        cell, or squeezed into it by nearest neighbour along an axis where it is larger."""
        from PIL import Image, ImageDraw

        cell = self.cell
        x0, y0, x1, y1 = font.font.getbbox(ch, anchor="ls")
        pad = 2 * cell
        w, h = x1 - x0 + 2 * pad, max(y1, font.descent) - min(y0, -font.ascent) + 2 * pad
        ox, oy = pad - x0, pad - min(y0, -font.ascent)
        canvas = Image.new("L", (w, h))
        ImageDraw.Draw(canvas).text((ox, oy), ch, font=font.font, fill=255, anchor="ls")
        ink = np.asarray(canvas) >= 128
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        if not rows.size:
            return np.zeros((cell, cell), bool)
        c0, c1 = min(cols[0], ox + x0), max(cols[-1] + 1, ox + x1)
        r0, r1 = min(rows[0], oy - font.ascent), max(rows[-1] + 1, oy + font.descent)
        return _fit(ink[r0:r1, c0:c1], cell)


def _fit(img: np.ndarray, cell: int) -> np.ndarray:
    """Centre `img` in a cell x cell cell; an axis longer than the cell is squeezed (nearest)."""
    for axis in (0, 1):
        n = img.shape[axis]
        if n > cell:
            img = np.take(img, nearest(n, cell), axis=axis)
    out = np.zeros((cell, cell), bool)
    r, c = (cell - img.shape[0]) // 2, (cell - img.shape[1]) // 2
    out[r:r + img.shape[0], c:c + img.shape[1]] = img
    return out


def nearest(n: int, m: int) -> np.ndarray:
    """Source indices of a nearest-neighbour resize from n to m samples (pixel centres)."""
    return np.minimum(((np.arange(m) + 0.5) * n / m).astype(np.int64), n - 1)
