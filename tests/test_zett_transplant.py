"""Tokenizer transplantation baselines (lexi/zett/transplant.py): OMP and TokenAdapt.

A tiny base (lexi's char tokenizer, random rows) is moved onto a SentencePiece target that shares
its letters and the space (the anchors) and adds a few longer tokens; donors are built by hand so
the right rows are known exactly.
"""
import time

import numpy as np
import pytest

from lexi import cli
from lexi.errors import UserError
from lexi.tokenizers import CharTokenizer, Tokenizer
from lexi.zett.transfer import baseline_rows
from lexi.zett.transplant import Donor, TokenAdapt, anchor_ids, combine, load_donor, omp, transplant_rows
from lexi.zett.unigram import unigram_tokenizer

D = 32
LETTERS = "abcdefghijklmnopqrstuvwxyz "
NEW = ("the", "and", "xyz", " q")


class _FakeBase:
    """What the baselines read of a base: its tokenizer and embedding matrices."""

    def __init__(self, tokenizer, table, head=None):
        self.tokenizer, self.tied = tokenizer, head is None
        self.params = {"body": {}, "embedding": {"table": table, **({} if head is None else {"head": head})}}


@pytest.fixture(scope="module")
def char():
    return CharTokenizer()


@pytest.fixture(scope="module")
def target():
    return unigram_tokenizer([(c, -2.0) for c in LETTERS] + [(t, -1.0) for t in NEW])


@pytest.fixture(scope="module")
def table(char):
    return np.random.default_rng(0).normal(size=(char.vocab_size, D)).astype(np.float32)


def _ids(target, *pieces):
    return [target._sp.piece_to_id(p.replace(" ", "\u2581")) for p in pieces]


def _donor(target, char, base_VxD, combos: dict, *, map_DxE=None, seed=1) -> Donor:
    """A donor with the target tokenizer: anchors get the base row (through `map_DxE`, another
    space), a token in `combos` ({piece: {base char: coefficient}}) that combination of base rows,
    every other id a random row."""
    m = np.eye(D) if map_DxE is None else map_DxE
    rows = np.random.default_rng(seed).normal(size=(target.vocab_size, m.shape[1]))
    t_ids, b_ids = anchor_ids(target.token_bytes(), char)
    rows[t_ids] = base_VxD[b_ids] @ m
    for piece, combo in combos.items():
        rows[_ids(target, piece)[0]] = sum(c * base_VxD[ord(ch)] for ch, c in combo.items()) @ m
    return Donor(workdir=None, tokenizer=target, table_VxE=rows.astype(np.float32), head_VxE=rows.astype(np.float32))


# --- OMP itself ------------------------------------------------------------------------------

def _reference_omp(y_E, atoms_NxE, k):
    """Textbook OMP for one target: pick the unit atom most correlated with the residual, refit."""
    unit = atoms_NxE / np.linalg.norm(atoms_NxE, axis=1, keepdims=True)
    chosen, resid = [], y_E.astype(np.float64)
    for _ in range(k):
        corr = np.abs(unit @ resid)
        corr[chosen] = -1
        chosen.append(int(corr.argmax()))
        coef, *_ = np.linalg.lstsq(atoms_NxE[chosen].T.astype(np.float64), y_E, rcond=None)
        resid = y_E - atoms_NxE[chosen].T @ coef
    return chosen, coef


def test_omp_finds_a_known_sparse_solution():
    atoms = np.asarray([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.7, 0.7, 0, 0]], np.float32)
    y = np.asarray([[0, 3, 0, -1], [2, 2, 0, 0]], np.float32)  # 3 e1 - e3; 2 sqrt(2) x the last atom
    idx, coef = omp(y, atoms, k=4)
    assert idx.shape == coef.shape == (2, 4)
    assert idx[0, :2].tolist() == [1, 3] and np.allclose(coef[0], [3, -1, 0, 0], atol=1e-6)
    assert idx[1, 0] == 4 and np.allclose(coef[1], [2 / 0.7, 0, 0, 0], atol=1e-5)  # one atom is enough
    np.testing.assert_allclose(np.einsum("bk,bkd->bd", coef, atoms[idx]), y, atol=1e-5)


@pytest.mark.parametrize("k", [1, 5, 16])
def test_omp_matches_a_one_token_numpy_reference(k):
    r = np.random.default_rng(k)
    atoms = r.normal(size=(50, 16)).astype(np.float32)
    y = r.normal(size=(20, 16)).astype(np.float32)
    t0 = time.perf_counter()
    idx, coef = omp(y, atoms, k, chunk=7)  # chunks that do not divide the batch
    print(f"omp: 20 targets, 50 anchors, width 16, k={k}: {time.perf_counter() - t0:.4f} s")
    for b in range(len(y)):
        chosen, want = _reference_omp(y[b], atoms, k)
        assert idx[b].tolist() == chosen
        np.testing.assert_allclose(coef[b], want, rtol=1e-4, atol=1e-5)


def test_omp_rejects_bad_arguments():
    with pytest.raises(UserError, match="k >= 1"):
        omp(np.ones((1, 4)), np.ones((3, 4)), 0)
    with pytest.raises(UserError, match="no anchor"):
        omp(np.ones((1, 4)), np.ones((0, 4)), 4)


# --- OMP rows --------------------------------------------------------------------------------

@pytest.mark.parametrize("other_space", [False, True])
def test_omp_with_all_anchors_reproduces_shared_rows_and_exact_combinations(char, target, table, other_space):
    """k = every anchor. A shared token's own donor row is itself: OMP gives back its base row.
    A new token whose donor row is 2 t - 0.5 h + 0.25 e gets exactly 2 t - 0.5 h + 0.25 e of the
    base, also when the donor's space is another one (a random linear map to width 40)."""
    vocab = target.token_bytes()
    t_ids, b_ids = anchor_ids(vocab, char)
    anchored = {vocab.pieces[i] for i in t_ids}
    assert {c.encode() for c in LETTERS} <= anchored  # every letter and the space, and the other ASCII
    assert all(len(p) == 1 and p[0] < 0x80 for p in anchored)  # bytes the target writes with "<0xNN>" alone
    map_DxE = np.random.default_rng(2).normal(size=(D, 40)) if other_space else None
    combo = {"t": 2.0, "h": -0.5, "e": 0.25}
    donor = _donor(target, char, table, {"the": combo}, map_DxE=map_DxE)

    idx, coef = omp(donor.table_VxE[t_ids], donor.table_VxE[t_ids], k=len(t_ids))
    np.testing.assert_allclose(combine(table, b_ids[idx], coef), table[b_ids], atol=1e-4)

    rows, = transplant_rows([table], char, target, "omp", donor=donor, k=len(t_ids))
    want = sum(c * table[ord(ch)] for ch, c in combo.items())
    np.testing.assert_allclose(rows[_ids(target, "the")[0]], want, atol=1e-4)
    np.testing.assert_array_equal(rows[t_ids], table[b_ids])


def test_omp_transfers_input_and_output_matrices_of_an_untied_base(char, target, table):
    head = np.random.default_rng(3).normal(size=table.shape).astype(np.float32)
    the = _ids(target, "the")[0]
    t_ids, b_ids = anchor_ids(target.token_bytes(), char)
    donor = _donor(target, char, table, {"the": {"t": 1.0, "h": 1.0}})
    head_rows = donor.head_VxE.copy()
    head_rows[t_ids] = head[b_ids]
    head_rows[the] = 3 * head[ord("a")] - head[ord("n")]
    donor.head_VxE = head_rows
    base = _FakeBase(char, table, head)
    rows_in, rows_out = baseline_rows(base, target, "omp", donor=donor, omp_k=len(t_ids))
    np.testing.assert_allclose(rows_in[the], table[ord("t")] + table[ord("h")], atol=1e-4)
    np.testing.assert_allclose(rows_out[the], 3 * head[ord("a")] - head[ord("n")], atol=1e-4)
    np.testing.assert_array_equal(rows_out[t_ids], head[b_ids])


# --- TokenAdapt ------------------------------------------------------------------------------

def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("threshold", [0.6, -1.0])
def test_tokenadapt_row_is_the_papers_hybrid(char, target, table, threshold):
    """"the" in the base's own space, by hand: local = pieces t, h, e weighted by
    softmax(((softmax(cos / T) + 1/3) / 2) / T); global = the 3 nearest non-special base tokens
    above the threshold, softmax(cos / T); row = 0.7 local + 0.3 global (local alone if none)."""
    cfg = TokenAdapt(threshold=threshold)
    rows, = transplant_rows([table], char, target, "tokenadapt", tokenadapt=cfg)
    pieces = [ord(c) for c in "the"]
    aux = table[pieces].mean(0)
    w = _softmax((_softmax(_unit(table[pieces]) @ _unit(aux) / cfg.temperature) + 1 / 3) / 2 / cfg.temperature)
    local = w @ table[pieces]
    candidates = np.asarray([i for i in range(char.vocab_size) if i not in (0, 2, 3, 26)])
    sims = _unit(table[candidates]) @ _unit(aux)
    top = np.argsort(-sims)[: cfg.top_k]
    keep = top[sims[top] >= threshold]
    want = local
    if len(keep):
        want = 0.7 * local + 0.3 * (_softmax(sims[keep] / cfg.temperature) @ table[candidates[keep]])
    if threshold < 0:
        assert len(keep) == cfg.top_k  # every neighbour passes
    np.testing.assert_allclose(rows[_ids(target, "the")[0]], want, rtol=1e-5, atol=1e-5)


def test_tokenadapt_with_a_donor_uses_the_donors_space(char, target, table):
    """A donor changes the similarities, not the rows combined: still base rows of base tokens."""
    donor = _donor(target, char, table, {}, map_DxE=np.random.default_rng(4).normal(size=(D, 24)))
    own, = transplant_rows([table], char, target, "tokenadapt")
    via, = transplant_rows([table], char, target, "tokenadapt", donor=donor)
    new = _ids(target, *NEW)
    assert not np.allclose(own[new], via[new])
    assert np.isfinite(via).all()


# --- every method ----------------------------------------------------------------------------

METHODS = [("lexical", False), ("tokenadapt", False), ("tokenadapt", True), ("omp", True)]


@pytest.mark.parametrize("method, with_donor", METHODS)
def test_shared_tokens_and_specials_keep_their_rows(char, target, table, method, with_donor):
    head = np.random.default_rng(5).normal(size=table.shape).astype(np.float32)
    donor = _donor(target, char, table, {}) if with_donor else None
    rows_in, rows_out = baseline_rows(_FakeBase(char, table, head), target, method, donor=donor)
    t_ids, b_ids = anchor_ids(target.token_bytes(), char)
    np.testing.assert_array_equal(rows_in[t_ids], table[b_ids])
    np.testing.assert_array_equal(rows_out[t_ids], head[b_ids])
    for t_id, c_id in ((target.bos_id, char.bos_id), (target.eos_id, char.eos_id), (target.unk_id, char.unk_id)):
        np.testing.assert_array_equal(rows_in[t_id], table[c_id])
    assert np.isfinite(rows_in).all() and np.isfinite(rows_out).all()


@pytest.mark.parametrize("method", ["random", "tokenadapt", "omp"])
def test_rows_are_deterministic_for_a_seed(char, target, table, method):
    donor = _donor(target, char, table, {})
    base = _FakeBase(char, table)
    first = baseline_rows(base, target, method, seed=3, donor=donor, omp_k=8)
    again = baseline_rows(base, target, method, seed=3, donor=donor, omp_k=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    other = baseline_rows(base, target, method, seed=4, donor=donor, omp_k=8)
    assert np.array_equal(first[0], other[0]) == (method != "random")  # only random draws


# --- bad input -------------------------------------------------------------------------------

def test_a_donor_with_another_tokenizer_is_refused(char, target, table):
    donor = Donor(workdir="runs/donor", tokenizer=char, table_VxE=table, head_VxE=table)
    with pytest.raises(UserError, match=r"runs/donor: its tokenizer \(char, 128 ids\) is not the target tokenizer "
                                        r"\(sentencepiece, \d+ ids\): id 1 .*--tokenizer runs/donor"):
        transplant_rows([table], char, target, "omp", donor=donor)


class _Han(Tokenizer):
    """Ten CJK characters and two specials: no token in common with the ASCII char tokenizer."""

    name, vocab_size, pad_id, bos_id, eos_id, special_ids = "han-test", 12, 10, 11, 11, (10, 11)
    encode = record = None

    def decode(self, ids):
        return "".join(chr(0x4E00 + i) for i in ids if i < 10)


def test_vocabularies_without_shared_tokens_have_no_anchors(char, table):
    han = _Han()
    donor = Donor(workdir="d", tokenizer=han, table_VxE=np.ones((han.vocab_size, 4), np.float32),
                  head_VxE=np.ones((han.vocab_size, 4), np.float32))
    with pytest.raises(UserError, match="share no token .* no anchors"):
        transplant_rows([table], char, han, "omp", donor=donor)


def test_omp_without_a_donor_says_what_it_needs(char, target, table, tmp_path, capsys):
    with pytest.raises(UserError, match="--rows omp needs --donor RUN: a lexi run directory"):
        baseline_rows(_FakeBase(char, table), target, "omp")
    with pytest.raises(UserError, match="is not a lexi run directory"):
        load_donor(tmp_path, target)
    base = ["zett", "transfer", "--workdir", str(tmp_path / "zett"), "--tokenizer", "byte",
            "--out-workdir", str(tmp_path / "out")]
    assert cli.main(base + ["--rows", "omp"]) == 2
    assert "--rows omp needs --donor RUN" in capsys.readouterr().err
    assert cli.main(base + ["--rows", "fvt", "--donor", str(tmp_path)]) == 2
    assert "--donor is read by --rows tokenadapt and omp only, not fvt" in capsys.readouterr().err
    assert cli.main(base + ["--rows", "omp", "--donor", str(tmp_path), "--omp-k", "0"]) == 2
    assert "--omp-k must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
