"""Embedding matrices for a new tokenizer: from the trained hypernetwork, or from a baseline.

`predict_rows` runs a trained ZeTT hypernetwork over a tokenizer's whole vocabulary;
`baseline_rows` gives the heuristics it is compared with:
  fvt      mean of the base rows of the token's base pieces (Gee et al.'s FVT)
  lexical  the base row of the base token with exactly the same bytes, else FVT (decompose's
           shared-token rule: a tokenizer moved onto itself keeps every row)
  random   Gaussian rows with the base matrix's per-dimension mean and std
  tokenadapt, omp  transplantation methods from the literature (lexi/zett/transplant.py); omp
           needs a donor, a lexi run whose tokenizer is the target
Special tokens always take the base row of the same role. `write_run` turns rows into a
normal lexi run directory (base backbone, new tokenizer, new matrices, step 0), which
`lexi eval`, `lexi compare` and `lexi train` (continued training) accept; `transfer` does
all of it (`lexi zett transfer`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lexi.errors import UserError
from lexi.rundir import newest_checkpoint, read_config
from lexi.zett.task import Base, ZettRun, assemble, frozen_arrays, padded_vocab
from lexi.zett.transplant import NEEDS_DONOR, OMP_K, Donor, load_donor, transplant_rows
from lexi.zett.vocab import decompose

FVT_PIECES = 64  # FVT averages every piece; tokens longer than this in base pieces are cut
BASELINES = ("fvt", "lexical", "random", "tokenadapt", "omp")
DONOR_METHODS = ("tokenadapt", "omp")  # the methods that read --donor (omp cannot run without one)


@dataclasses.dataclass(frozen=True)
class Trained:
    """A ZeTT run's newest hypernetwork parameters, with the run they belong to."""

    zett: ZettRun
    params: Any
    step: int

    @property
    def base(self) -> Base:
        return self.zett.base

    @property
    def cfg(self):
        return self.zett.run.cfg


def load_trained(workdir: str | Path) -> Trained:
    """A ZeTT run directory's newest hypernetwork (and its base, from config.base_workdir)."""
    workdir = Path(workdir)
    cfg = read_config(workdir, task="zett")
    ckpt, step = newest_checkpoint(workdir)
    zr = assemble(cfg, workdir)
    state, _ = ckpt.restore(step, zr.run.abstract_state)
    ckpt.close()
    return Trained(zr, state.params, step)


def special_mask(tok) -> np.ndarray:
    m = np.zeros(tok.vocab_size, bool)
    m[[i for i in tok.special_ids if 0 <= i < tok.vocab_size]] = True
    return m


def predict_rows(trained: Trained, tok, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(input rows, output rows) float32 [V, D] for tokenizer `tok`, in padded chunks (one compile)."""
    zr = trained.zett
    dec = decompose(tok.token_bytes(), trained.base.tokenizer, zr.hypernet.cfg.pieces)
    special = special_mask(tok)
    v = tok.vocab_size
    chunk = min(chunk, padded_vocab(v))
    apply = jax.jit(lambda p, pieces, sp, frozen: zr.hypernet.apply(
        {"params": p}, pieces, sp, frozen["base_in"], frozen.get("base_out")))
    outs_in, outs_out = [], []
    for lo in range(0, v, chunk):
        pieces = np.full((chunk, dec.ids_VxL.shape[1]), -1, np.int32)
        pieces[:, 0] = 0
        sp = np.zeros(chunk, bool)
        n = min(chunk, v - lo)
        pieces[:n], sp[:n] = dec.ids_VxL[lo:lo + n], special[lo:lo + n]
        rows_in, rows_out = apply(trained.params, jnp.asarray(pieces), jnp.asarray(sp), zr.frozen)
        outs_in.append(np.asarray(rows_in)[:n])
        outs_out.append(np.asarray(rows_out)[:n])
    return np.concatenate(outs_in), np.concatenate(outs_out)


def baseline_rows(base: Base, tok, method: str, seed: int = 0, *, donor: Optional[Donor] = None,
                  omp_k: int = OMP_K) -> tuple[np.ndarray, np.ndarray]:
    """(input rows, output rows) float32 [V, D] for tokenizer `tok` by a baseline; `donor` is
    read by tokenadapt (its auxiliary space) and omp (required), `omp_k` by omp."""
    frozen = {k: np.asarray(v) for k, v in frozen_arrays(base).items() if k != "body"}
    mats = [frozen["base_in"]] + ([frozen["base_out"]] if "base_out" in frozen else [])
    if method in DONOR_METHODS:
        rows = transplant_rows(mats, base.tokenizer, tok, method, donor=donor, k=omp_k, pieces=FVT_PIECES)
    elif method == "random":
        rng = np.random.default_rng(seed)
        rows = [m.mean(0) + m.std(0) * rng.standard_normal((tok.vocab_size, m.shape[1])).astype(np.float32)
                for m in mats]
        rows = _keep_specials(rows, mats, base, tok)
    elif method in ("fvt", "lexical"):
        dec = decompose(tok.token_bytes(), base.tokenizer, FVT_PIECES, lexical=method == "lexical")
        valid = dec.ids_VxL >= 0
        ids = np.maximum(dec.ids_VxL, 0)
        rows = [(m[ids] * valid[..., None]).sum(1) / np.maximum(valid.sum(1), 1)[:, None] for m in mats]
    else:
        raise UserError(f"unknown baseline {method!r}; choose one of {BASELINES}")
    rows = [r.astype(np.float32) for r in rows]
    return rows[0], rows[-1]


def _keep_specials(rows, mats, base, tok):
    """Special ids keep the base row of the same role (what `decompose` maps them to)."""
    dec = decompose(tok.token_bytes(), base.tokenizer, 1)
    sp = special_mask(tok)
    return [np.where(sp[:, None], m[np.maximum(dec.ids_VxL[:, 0], 0)], r) for m, r in zip(mats, rows)]


def write_run(base: Base, tok, rows_in: np.ndarray, rows_out: np.ndarray, out: str | Path, source: dict) -> Path:
    """A lexi run directory with the base backbone, tokenizer `tok` and these rows at step 0."""
    from lexi.train.new_run import write_initial_run

    cfg = ml_collections.ConfigDict(base.cfg.to_dict())
    cfg.data.tokenizer.update(kind=tok.name, vocab_size=int(tok.vocab_size), model_file="")
    emb = {"table": rows_in} if base.tied else {"table": rows_in, "head": rows_out}
    params = {"body": jax.tree_util.tree_map(np.asarray, base.params["body"]), "embedding": emb}
    place = lambda run: jax.tree_util.tree_map(jax.device_put, params, run.state_shardings.params)
    return write_initial_run(cfg, tok, out, place, {"transfer.json": source})


def check_donor_use(rows: str, donor, omp_k: int) -> None:
    """--donor and --omp-k only where a method reads them; omp only with a donor."""
    if rows == "omp" and not donor:
        raise UserError(NEEDS_DONOR)
    if donor and rows not in DONOR_METHODS:
        raise UserError(f"--donor is read by --rows {' and '.join(DONOR_METHODS)} only, not {rows}")
    if omp_k < 1:
        raise UserError(f"--omp-k must be at least 1 (anchors per new token), got {omp_k}")


def transfer(zett_workdir: str | Path, tokenizer: str | Path, out_workdir: str | Path, *, rows: str = "hypernet",
             seed: int = 0, donor: Optional[str | Path] = None, omp_k: int = OMP_K) -> tuple[Path, Any]:
    """`lexi zett transfer`: the ZeTT run's base moved to `tokenizer` (a name or path for
    lexi.tokenizers.load) with `rows` from the hypernetwork or a baseline, written as a run
    directory. `donor`: a run directory whose tokenizer is `tokenizer` (omp needs one; tokenadapt
    uses it as its auxiliary space). Returns (that directory, the target tokenizer)."""
    from lexi import tokenizers

    if rows not in ("hypernet", *BASELINES):
        raise UserError(f"rows {rows!r}: choose hypernet or one of {BASELINES}")
    check_donor_use(rows, donor, omp_k)
    trained = load_trained(Path(zett_workdir))
    target = tokenizers.load(tokenizer)
    loaded = load_donor(donor, target) if donor else None
    matrices = predict_rows(trained, target) if rows == "hypernet" else baseline_rows(
        trained.base, target, rows, seed, donor=loaded, omp_k=omp_k)
    source = {"zett_workdir": str(Path(zett_workdir).resolve()), "hypernet_step": trained.step,
              "tokenizer": str(tokenizer), "rows": rows, "base_workdir": str(trained.base.workdir)}
    if loaded is not None:
        source["donor_workdir"] = str(loaded.workdir.resolve())
    if rows == "omp":
        source["omp_k"] = omp_k
    return write_run(trained.base, target, *matrices, out_workdir, source), target
