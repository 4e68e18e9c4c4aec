"""Glyph embedding tables (Bochkov 2025): each token's rendered Unifont picture -> full-rank
PCA -> unit rows, never trained. Improves on the published table: every distinct token
gets a distinct row (whitespace and controls drawn through visible pictures, glyph-less
code points as hex boxes, homoglyphs marked) and any lexi tokenizer works.

    from lexi.glyph import glyph_table
    table = glyph_table(tokenizer, cell_px=32, cache_dir=None)  # float32 [V, 1024], cached

`glyph_table_with_stats` also returns duplicates, coverage per font and timings; the CLI
`lexi glyphs --tokenizer unicode --out table.npz` writes the table with what each id stands
for (`lexi.glyph.npz`).
"""
from lexi.glyph import npz
from lexi.glyph.table import (Display, display_label, glyph_table, glyph_table_with_stats, token_displays,
                              token_labels)

__all__ = ["npz", "glyph_table", "glyph_table_with_stats", "token_displays", "token_labels", "display_label", "Display"]
