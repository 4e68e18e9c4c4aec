"""Geometry of the frozen input tables the glyph comparison trains with (issue 19): does a
table keep the corpus's characters apart, and are 'a' and 'A' neighbours?

  python benchmarks/glyph_geometry.py                          # configs/glyph.py:small on KJV, d_model 128
  python benchmarks/glyph_geometry.py --corpus python_code

For each table at the config's d_model (the full 1,024-dim glyph rows for reference, the
four projections of lexi/embeddings/frozen.py, the binary codes and a trainable table's
N(0, 1) initial rows), over exactly the rows the run would use:
  letters/digits cos   mean cosine between distinct characters of a-z, A-Z, 0-9 (62 rows)
  case neighbours      share of the 26 letters whose other case is their nearest neighbour
                       among those 62
  used ids cos         mean cosine between distinct ids the training split produces (a
                       sample of 2,000), i.e. how crowded the corpus's own tokens are
  used ids eff. dims   participation ratio of the used rows' covariance eigenvalues
                       ((sum l)^2 / sum l^2): how many directions they really spread over
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import string
import tempfile
from pathlib import Path

import numpy as np

LATIN = string.ascii_lowercase + string.ascii_uppercase + string.digits


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def stats(table: np.ndarray, latin_ids: np.ndarray, used: np.ndarray, rng: np.random.Generator) -> dict:
    lat = _unit(table[latin_ids].astype(np.float64))
    cos = lat @ lat.T
    off = ~np.eye(len(lat), dtype=bool)
    np.fill_diagonal(cos, -np.inf)
    nearest = cos.argmax(axis=1)
    partner = np.r_[np.arange(26, 52), np.arange(26)]  # a <-> A
    case = float(np.mean(nearest[:26] == partner[:26]))
    sample = rng.choice(used, size=min(2000, len(used)), replace=False)
    u = _unit(table[sample].astype(np.float64))
    ucos = u @ u.T
    eig = np.clip(np.linalg.eigvalsh(np.cov(table[used].astype(np.float64), rowvar=False)), 0, None)
    return {"letters_cos": float(cos[off].mean()), "case_neighbours": case,
            "used_cos": float(ucos[~np.eye(len(u), dtype=bool)].mean()),
            "used_dims": float(eig.sum() ** 2 / max((eig ** 2).sum(), 1e-300))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/glyph.py:small")
    ap.add_argument("--corpus", default="kjv")
    args = ap.parse_args(argv)

    from lexi.config import load_config
    from lexi.embeddings.frozen import binary_codes, fit_width
    from lexi.glyph import glyph_table
    from lexi.rundir import cache_dir
    from lexi.train.setup_run import build_run, train_token_counts

    cfg = load_config(args.config)
    cfg.data.corpus = args.corpus
    run = build_run(cfg, Path(tempfile.mkdtemp()) / "run")
    tok, d = run.tokenizer, cfg.model.d_model
    used = np.flatnonzero(train_token_counts(run))
    latin_ids = np.asarray([tok.encode(c)[0] for c in LATIN])
    assert all(len(tok.encode(c)) == 1 for c in LATIN)
    raw = glyph_table(tok, cell_px=32, cache_dir=cache_dir(cfg))
    tables = {
        "glyph, all 1,024 dims (reference)": fit_width(raw, raw.shape[1], principal=True),
        "glyph, pca (today)": fit_width(raw, d, principal=True, projection="pca"),
        "glyph, random_orthogonal": fit_width(raw, d, principal=True, projection="random_orthogonal"),
        "glyph, pca_used": fit_width(raw, d, principal=True, projection="pca_used", used_ids=used),
        "glyph, pca_used_whitened": fit_width(raw, d, principal=True, projection="pca_used_whitened", used_ids=used),
        "binary codes, 64 bits": fit_width(binary_codes(tok.vocab_size, 64, 0), d),
        "trainable, N(0, 1) at init": np.random.default_rng(0).standard_normal((tok.vocab_size, d)),
    }
    print(f"{args.config} on {args.corpus}: {len(used)} ids used by the training split, d_model {d}\n")
    print("| table | letters/digits mean cos | case partner is nearest | used ids mean cos | used ids eff. dims |")
    print("|---|---|---|---|---|")
    for name, t in tables.items():
        s = stats(np.asarray(t), latin_ids, used, np.random.default_rng(0))
        print(f"| {name} | {s['letters_cos']:.3f} | {s['case_neighbours']:.2f} | {s['used_cos']:.3f} | "
              f"{s['used_dims']:.1f} |")


if __name__ == "__main__":
    main()
