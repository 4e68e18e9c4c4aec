"""Fonts for glyph tables: GNU Unifont (BMP and planes 1+), else a font a Python package ships.

The chain, first font that has a glyph wins:
  unifont        unifont.otf, the BMP            env LEXI_UNIFONT, or the `unifont=` argument
  unifont_upper  unifont_upper.otf, planes 1+    env LEXI_UNIFONT_UPPER, or `unifont_upper=`
  fallback_font  DejaVuSans.ttf from matplotlib  env LEXI_FALLBACK_FONT, or `fallback=`
Defaults: Debian's fonts-unifont paths. A Unifont file that is missing is left out with a
note (the table builder warns with the coverage report); no font at all is a UserError.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional

from lexi.errors import UserError

UNIFONT_DIR = Path("/usr/share/fonts/opentype/unifont")
DEFAULT_UNIFONT = UNIFONT_DIR / "unifont.otf"
DEFAULT_UNIFONT_UPPER = UNIFONT_DIR / "unifont_upper.otf"
ENV_UNIFONT, ENV_UNIFONT_UPPER, ENV_FALLBACK = "LEXI_UNIFONT", "LEXI_UNIFONT_UPPER", "LEXI_FALLBACK_FONT"
ROLES = ("unifont", "unifont_upper", "fallback_font")

_DIGESTS: dict[tuple[str, int, int], str] = {}


@dataclasses.dataclass(frozen=True)
class FontSource:
    role: str  # one of ROLES
    path: Path


def matplotlib_font() -> Optional[Path]:
    """DejaVuSans.ttf shipped in matplotlib's package data (found without importing matplotlib)."""
    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return path
    return None


def resolve_fonts(unifont: Optional[str | os.PathLike] = None, unifont_upper: Optional[str | os.PathLike] = None,
                  fallback: Optional[str | os.PathLike] = None) -> tuple[list[FontSource], list[str]]:
    """The font chain and notes about what is missing. Arguments beat env vars beat defaults."""
    chosen = {
        "unifont": unifont or os.environ.get(ENV_UNIFONT) or DEFAULT_UNIFONT,
        "unifont_upper": unifont_upper or os.environ.get(ENV_UNIFONT_UPPER) or DEFAULT_UNIFONT_UPPER,
        "fallback_font": fallback or os.environ.get(ENV_FALLBACK) or matplotlib_font(),
    }
    chain, notes = [], []
    for role in ROLES:
        path = chosen[role]
        if path is None:
            notes.append(f"{role}: no font found (matplotlib's DejaVuSans.ttf is missing)")
        elif not Path(path).expanduser().is_file():
            notes.append(f"{role}: {path} does not exist")
        else:
            chain.append(FontSource(role, Path(path).expanduser()))
    if not chain:
        raise UserError("no font to draw glyphs with: " + "; ".join(notes) + f". Install GNU Unifont "
                        f"(Debian: fonts-unifont) or point {ENV_UNIFONT} / {ENV_FALLBACK} at a .otf/.ttf file")
    return chain, notes


def font_digest(path: Path) -> str:
    """sha256 of the font file's bytes (memoised per path, size and mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _DIGESTS[key]


def code_points(path: Path) -> frozenset[int]:
    """The code points the font maps to a glyph (its best cmap)."""
    from fontTools.ttLib import TTFont, TTLibError

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # chatty about Unifont's 1970 timestamps
    try:
        with TTFont(str(path), lazy=True) as font:
            return frozenset((font.getBestCmap() or {}).keys())
    except (TTLibError, OSError, AssertionError, KeyError) as e:
        raise UserError(f"font {path} cannot be read ({type(e).__name__}: {e}); pass a .otf or .ttf file") from e
