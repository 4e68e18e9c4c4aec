"""Tokenizer transplantation baselines from the literature, measured beside ZeTT's hypernetwork.

Both methods keep every row they can: a special target id takes the base row of its role and a
token the base also has (the same bytes: vocab.py's shared-token rule) takes that base row; only
the other target tokens ("new") get computed rows, for the input matrix and, in an untied base,
the output matrix.

omp (Goddard & Fernandes Neto 2025, "Training-Free Tokenizer Transplantation via Orthogonal
  Matching Pursuit"). It needs a donor: a lexi run (trained or imported) whose tokenizer is the
  target, so every target token has a trained donor row. The anchors are the shared tokens. Each
  new token's donor row is approximated by orthogonal matching pursuit as a combination of at most
  k anchors' donor rows; the same coefficients applied to those anchors' base rows give its base
  row. The output matrix gets its own pursuit over the donor's output rows (its table again when
  the donor is tied). k defaults to 64, mergekit-tokensurgeon's `--k` default (the authors' tool;
  its earlier releases used 8, the k of the paper's Figure 1).

tokenadapt (Sharthak et al. 2025, "Achieving Tokenizer Flexibility in Language Models through
  Heuristic Adaptation and Supertoken Learning"). row = (1 - w) local + w global, w = 0.3:
  - local: the token's base pieces (FVT's decomposition), weighted by softmax(((softmax(cos / T)
    + piece bytes / token bytes) / 2) / T), cos being each piece's cosine similarity to the token
    in an auxiliary space, T = 0.3;
  - global: the top 3 base tokens by cosine similarity to the token in that space, those of
    similarity >= 0.6 weighted by softmax(cos / T); a token with none keeps its local row.
  Defaults are those of the authors' tool. The paper embeds token strings with an external text
  embedding model; lexi has none, so the auxiliary space is a donor's input matrix when one is
  given (a new token: its donor row; a base token: the mean donor row of its pieces in the target
  tokenizer, i.e. its own donor row when shared), else the base's own input matrix (a new token:
  the mean base row of its pieces, FVT; a base token: its row). Without a donor the global
  neighbours are mostly the token's own pieces, so tokenadapt stays near a reweighted FVT.

Everything below is numpy on the host; the pursuit runs for all new tokens at once in chunks
(one [chunk, anchors] matrix product per step), so a 32k-token target is a batch job, not a loop
over tokens.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.token_bytes import ByteVocab
from lexi.zett.vocab import _base, _shared, decompose

OMP_K = 64  # mergekit-tokensurgeon's default sparsity (see the module docstring)
METHODS = ("omp", "tokenadapt")
NEEDS_DONOR = ("--rows omp needs --donor RUN: a lexi run directory (trained, or imported with `lexi import-hf`) "
               "whose tokenizer is the target; OMP writes each new token's donor row as a sparse combination "
               "of the tokens both tokenizers share and moves those coefficients to the base")
_BUDGET = 1 << 25  # elements per chunk of the largest temporary array


@dataclasses.dataclass(frozen=True)
class TokenAdapt:
    """TokenAdapt's settings (the authors' tool's defaults)."""

    temperature: float = 0.3
    top_k: int = 3
    global_weight: float = 0.3
    threshold: float = 0.6


@dataclasses.dataclass
class Donor:
    """A model that already has the target tokenizer: its embedding rows, one per target id."""

    workdir: Path
    tokenizer: Any
    table_VxE: np.ndarray
    head_VxE: np.ndarray  # output rows; the table again for a tied donor


# ---------------------------------------------------------------------------------------------
# donors


def load_donor(workdir: str | Path, target) -> Donor:
    """The donor run's newest matrices, refused unless its tokenizer is `target`."""
    from lexi.inference import load_for_inference

    workdir = Path(workdir)
    if not (workdir / "config.json").is_file():
        raise UserError(f"--donor {workdir} is not a lexi run directory (no config.json); the donor is a run trained "
                        "(`lexi train`) or imported (`lexi import-hf`) with the target tokenizer")
    loaded = load_for_inference(workdir)
    emb = dict(loaded.cfg.embedding)
    if emb.get("kind", "trainable") != "trainable":
        raise UserError(f"--donor {workdir} is a {emb.get('kind')!r} model, which has no embedding matrix to read; "
                        "the donor must be a standard LM (config.embedding.kind 'trainable')")
    e = loaded.params["embedding"]
    table = np.asarray(e["table"], np.float32)
    head = np.asarray(e["head"], np.float32) if "head" in e else table
    donor = Donor(workdir, loaded.tokenizer, table, head)
    check_donor(donor, target)
    return donor


def check_donor(donor: Donor, target) -> None:
    """OMP reads each target id's donor row, so the donor's vocabulary must be the target's, id for id."""
    mine, want = donor.tokenizer.token_bytes(), target.token_bytes()
    if mine != want:
        raise UserError(f"--donor {donor.workdir}: its tokenizer ({_describe(donor.tokenizer, mine)}) is not the "
                        f"target tokenizer ({_describe(target, want)}){_first_difference(mine, want)}; the donor must be "
                        "trained or imported with exactly the target tokenizer (pass the donor's own tokenizer, "
                        f"e.g. --tokenizer {donor.workdir})")
    rows = min(len(donor.table_VxE), len(donor.head_VxE))
    if rows < len(want):
        raise UserError(f"--donor {donor.workdir} has {rows} embedding rows for a {len(want)}-id tokenizer")


def _describe(tok, vocab: ByteVocab) -> str:
    return f"{getattr(tok, 'name', type(tok).__name__)}, {len(vocab)} ids"


def _first_difference(a: ByteVocab, b: ByteVocab) -> str:
    for i in range(min(len(a), len(b))):
        if a.pieces[i] != b.pieces[i] or a.roles.get(i) != b.roles.get(i):
            return f": id {i} is {a.roles.get(i) or a.pieces[i]!r} in the donor, {b.roles.get(i) or b.pieces[i]!r} here"
    return ""


# ---------------------------------------------------------------------------------------------
# rows kept, anchors


def kept_base_ids(target: ByteVocab, base_tok) -> np.ndarray:
    """int64[V]: the base id whose row each target id keeps (its role for a special id, the same
    bytes for a shared token), -1 for a new token."""
    out = np.full(len(target), -1, np.int64)
    special = target.special_mask()
    out[special] = decompose(target, base_tok, 1).ids_VxL[special, 0]
    for i, j in _shared(target, _base(base_tok)).items():
        out[i] = j
    return out


def anchor_ids(target: ByteVocab, base_tok) -> tuple[np.ndarray, np.ndarray]:
    """(target ids, base ids) of the tokens both vocabularies have, matched by their bytes."""
    pairs = sorted(_shared(target, _base(base_tok)).items())
    return np.asarray([i for i, _ in pairs], np.int64), np.asarray([j for _, j in pairs], np.int64)


# ---------------------------------------------------------------------------------------------
# orthogonal matching pursuit


def omp(targets_BxE: np.ndarray, atoms_NxE: np.ndarray, k: int, *, tol: float = 1e-6,
        chunk: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each target row as a combination of at most k atoms, chosen greedily (the atom most
    correlated with what is left, by cosine), refitted by least squares after every choice.

    Returns (atom indices int64 [B, K], coefficients float32 [B, K]) with K = min(k, N, E). A slot
    gets coefficient 0 once the target is reproduced (residual <= tol x its norm) or when its atom
    adds no new direction. The least squares is an incremental QR (Gram-Schmidt done twice, so Q
    stays orthonormal in float64); only the [chunk, N] correlation product is float32."""
    y_BxE = np.asarray(targets_BxE, np.float64)
    atoms = np.asarray(atoms_NxE, np.float64)
    if k < 1:
        raise UserError(f"OMP needs k >= 1 anchors per token, got {k}")
    if atoms.shape[0] == 0:
        raise UserError("OMP has no anchor tokens to combine")
    if y_BxE.shape[1] != atoms.shape[1]:
        raise ValueError(f"targets are {y_BxE.shape[1]}-wide, atoms {atoms.shape[1]}-wide")
    b, e = y_BxE.shape
    n = atoms.shape[0]
    kk = min(k, n, e)  # past e atoms the residual is zero
    norms_N = np.linalg.norm(atoms, axis=1)
    unit_NxE = (atoms / np.where(norms_N > 0, norms_N, 1.0)[:, None]).astype(np.float32)
    chunk = chunk or max(1, _BUDGET // (e * kk + n))
    idx_BxK, coef_BxK = np.zeros((b, kk), np.int64), np.zeros((b, kk), np.float32)
    for lo in range(0, b, chunk):
        idx_BxK[lo:lo + chunk], coef_BxK[lo:lo + chunk] = _omp_chunk(y_BxE[lo:lo + chunk], atoms, unit_NxE, kk, tol)
    return idx_BxK, coef_BxK


def _omp_chunk(y_CxE, atoms_NxE, unit_NxE, k, tol):
    c, e = y_CxE.shape
    rows = np.arange(c)
    q_CxExK, r_CxKxK = np.zeros((c, e, k)), np.tile(np.eye(k), (c, 1, 1))  # unit diagonal: slots never filled
    idx_CxK = np.zeros((c, k), np.int64)
    taken_CxN = np.zeros((c, atoms_NxE.shape[0]), bool)
    resid_CxE = y_CxE.copy()
    y_norm_C = np.linalg.norm(y_CxE, axis=1)
    for t in range(k):
        corr_CxN = np.abs(resid_CxE.astype(np.float32) @ unit_NxE.T)
        corr_CxN[taken_CxN] = -1.0
        j = corr_CxN.argmax(1)
        idx_CxK[:, t], taken_CxN[rows, j] = j, True
        a_CxE = atoms_NxE[j]
        v_CxE, proj_CxT = a_CxE, np.zeros((c, t))
        for _ in range(2):
            p = np.einsum("cek,ce->ck", q_CxExK[:, :, :t], v_CxE)
            v_CxE = v_CxE - np.einsum("cek,ck->ce", q_CxExK[:, :, :t], p)
            proj_CxT = proj_CxT + p
        v_norm = np.linalg.norm(v_CxE, axis=1)
        live = (v_norm > tol * np.linalg.norm(a_CxE, axis=1)) & (np.linalg.norm(resid_CxE, axis=1) > tol * y_norm_C)
        if not live.any():  # every target reproduced: the remaining slots stay empty
            break
        r_CxKxK[:, :t, t] = np.where(live[:, None], proj_CxT, 0.0)
        r_CxKxK[:, t, t] = np.where(live, v_norm, 1.0)  # a dead slot: unit diagonal, zero q, so coefficient 0
        q_CxExK[:, :, t] = np.where(live[:, None], v_CxE / np.where(live, v_norm, 1.0)[:, None], 0.0)
        q = q_CxExK[:, :, t]
        resid_CxE = resid_CxE - q * np.einsum("ce,ce->c", q, resid_CxE)[:, None]
    z_CxK = np.einsum("cek,ce->ck", q_CxExK, y_CxE)
    return idx_CxK, np.linalg.solve(r_CxKxK, z_CxK[..., None])[..., 0]


# ---------------------------------------------------------------------------------------------
# TokenAdapt


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax over the last axis where `mask`; 0 elsewhere, and all 0 on a row with nothing."""
    x = np.where(mask, x, -np.inf)
    top = np.max(x, axis=-1, keepdims=True)
    ex = np.where(mask, np.exp(x - np.where(np.isfinite(top), top, 0.0)), 0.0)
    return ex / np.maximum(ex.sum(-1, keepdims=True), 1e-30)


def local_weights(aux_new_BxE, aux_pieces_BxLxE, valid_BxL, rel_len_BxL, temperature: float) -> np.ndarray:
    """[B, L] weights of each token's pieces: similarity and relative length, each piece's share."""
    sim_BxL = np.einsum("be,ble->bl", _unit(aux_new_BxE), _unit(aux_pieces_BxLxE))
    by_sim = _softmax(sim_BxL / temperature, valid_BxL)
    return _softmax((by_sim + rel_len_BxL) / 2 / temperature, valid_BxL)


def global_weights(aux_new_BxE, aux_old_NxE, top_k: int, threshold: float,
                   temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices [B, K] into aux_old, weights [B, K]): the K most similar old tokens by cosine, those
    at or above `threshold` softmax-weighted, most similar first; a row with none is all 0."""
    sim_BxN = _unit(aux_new_BxE).astype(np.float32) @ _unit(aux_old_NxE).astype(np.float32).T
    kk = min(top_k, sim_BxN.shape[1])
    if kk < 1:
        return np.zeros((len(sim_BxN), 0), np.int64), np.zeros((len(sim_BxN), 0))
    part = np.argpartition(-sim_BxN, kk - 1, axis=1)[:, :kk]
    sims = np.take_along_axis(sim_BxN, part, 1)
    order = np.argsort(-sims, axis=1, kind="stable")
    ids, sims = np.take_along_axis(part, order, 1), np.take_along_axis(sims, order, 1).astype(np.float64)
    return ids, _softmax(sims / temperature, sims >= threshold)


def tokenadapt_weights(aux_new_BxE, aux_old_NxE, candidates_C, pieces_BxL, rel_len_BxL,
                       cfg: TokenAdapt = TokenAdapt()) -> tuple[np.ndarray, np.ndarray]:
    """(old ids [B, M], weights [B, M]) of each new token's row: its pieces (-1 = padding) with
    (1 - w) x the local weights, then its global neighbours among `candidates_C` with w x theirs
    (w = 0 for a token with no neighbour above the threshold)."""
    valid = pieces_BxL >= 0
    ids_BxL = np.maximum(pieces_BxL, 0)
    aux_new = np.asarray(aux_new_BxE, np.float64)
    w_local = local_weights(aux_new, aux_old_NxE[ids_BxL], valid, rel_len_BxL, cfg.temperature)
    near, w_global = global_weights(aux_new, aux_old_NxE[candidates_C], cfg.top_k, cfg.threshold, cfg.temperature)
    g = cfg.global_weight * (w_global.sum(1, keepdims=True) > 0)
    return (np.concatenate([ids_BxL, candidates_C[near]], 1),
            np.concatenate([(1 - g) * w_local, g * w_global], 1))


# ---------------------------------------------------------------------------------------------
# rows


def combine(mat_VxD: np.ndarray, ids_BxM: np.ndarray, w_BxM: np.ndarray) -> np.ndarray:
    """float32 [B, D]: sum_m w[b, m] mat[ids[b, m]], in chunks."""
    b, m = ids_BxM.shape
    out = np.empty((b, mat_VxD.shape[1]), np.float32)
    chunk = max(1, _BUDGET // max(1, m * mat_VxD.shape[1]))
    for lo in range(0, b, chunk):
        sl = slice(lo, lo + chunk)
        out[sl] = np.einsum("bm,bmd->bd", np.asarray(w_BxM[sl], np.float64), mat_VxD[ids_BxM[sl]])
    return out


def transplant_rows(mats: Sequence[np.ndarray], base_tok, target, method: str, *, donor: Optional[Donor] = None,
                    k: int = OMP_K, pieces: int = 64, tokenadapt: TokenAdapt = TokenAdapt()) -> list[np.ndarray]:
    """float32 [V, D] rows for `target` of every base matrix in `mats` (input, then output if
    untied) by `method` ("omp" or "tokenadapt"); `pieces` caps the base pieces per token."""
    if method not in METHODS:
        raise UserError(f"unknown transplantation method {method!r}; choose one of {METHODS}")
    if method == "omp" and donor is None:
        raise UserError(NEEDS_DONOR)
    if donor is not None:
        check_donor(donor, target)
    vocab = target.token_bytes()
    kept_V = kept_base_ids(vocab, base_tok)
    rows = [np.asarray(m, np.float32)[np.maximum(kept_V, 0)] for m in mats]
    new_B = np.flatnonzero(kept_V < 0)
    if method == "omp":
        _omp_rows(rows, mats, vocab, base_tok, donor, new_B, k)
    elif new_B.size:
        ids, w = _tokenadapt_plan(mats[0], vocab, base_tok, target, donor, new_B, pieces, tokenadapt)
        for row, mat in zip(rows, mats):
            row[new_B] = combine(np.asarray(mat, np.float32), ids, w)
    return rows


def _omp_rows(rows, mats, vocab, base_tok, donor, new_B, k) -> None:
    anchors_t, anchors_b = anchor_ids(vocab, base_tok)
    if anchors_t.size == 0:
        raise UserError(f"the target tokenizer and the base's share no token (no two ids with the same bytes), so OMP "
                        f"has no anchors to combine; choose another method (--rows tokenadapt, fvt) or a target "
                        f"that shares tokens with the base ({getattr(base_tok, 'name', '?')})")
    v = len(vocab)
    for n, (row, mat) in enumerate(zip(rows, mats)):
        if not new_B.size:
            break
        d = (donor.table_VxE if n == 0 else donor.head_VxE)[:v]
        idx, coef = omp(d[new_B], d[anchors_t], k)
        row[new_B] = combine(np.asarray(mat, np.float32), anchors_b[idx], coef)


def _tokenadapt_plan(base_in_VxD, vocab, base_tok, target, donor, new_B, pieces, cfg):
    dec = decompose(vocab, base_tok, pieces)
    pieces_BxL = dec.ids_VxL[new_B][:, : int(dec.lengths_V[new_B].max())]
    base_vocab = base_tok.token_bytes()
    piece_len = np.fromiter(map(len, base_vocab.pieces), np.float64, len(base_vocab))
    token_len = np.fromiter((len(vocab.pieces[i]) for i in new_B), np.float64, len(new_B))
    rel_len = np.where(pieces_BxL >= 0, piece_len[np.maximum(pieces_BxL, 0)], 0.0) / np.maximum(token_len, 1)[:, None]
    special = base_vocab.special_mask() | (piece_len == 0)
    candidates = np.flatnonzero(~special[: len(base_in_VxD)])
    if donor is None:  # the base's own input space: a new token is the mean of its pieces' rows
        aux_old = np.asarray(base_in_VxD, np.float64)
        valid = pieces_BxL >= 0
        aux_new = (aux_old[np.maximum(pieces_BxL, 0)] * valid[..., None]).sum(1) / valid.sum(1, keepdims=True)
    else:  # the donor's input space: a base token is the mean donor row of its pieces in the target tokenizer
        table = np.asarray(donor.table_VxE[: len(vocab)], np.float64)
        back = decompose(base_vocab, target, pieces)
        valid = back.ids_VxL >= 0
        aux_old = (table[np.maximum(back.ids_VxL, 0)] * valid[..., None]).sum(1) / valid.sum(1, keepdims=True)
        aux_new = table[new_B]
    chunk = max(1, _BUDGET // max(len(candidates), pieces_BxL.shape[1] * aux_old.shape[1], 1))
    parts = [tokenadapt_weights(aux_new[lo:lo + chunk], aux_old, candidates, pieces_BxL[lo:lo + chunk],
                                rel_len[lo:lo + chunk], cfg) for lo in range(0, len(new_B), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
