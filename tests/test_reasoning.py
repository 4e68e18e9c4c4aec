"""Reasoning scores beside exact match: rule-based predictors with known answers (oracle,
constant, uniform, the in-context copier and unigram counter) go through the very scoring the
model's outputs go through; prompt placement after real text; the induction score's
bookkeeping; clear errors when a prompt does not fit. The one model here is the copy rule as
a LanguageModel (`CopyLM`), run through `reasoning.evaluate` as `lexi eval` runs a checkpoint;
tests/test_eval.py runs the same code on trained tiny models."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import CharTok

from lexi.embeddings.trainable import TrainableEmbedding
from lexi.errors import UserError
from lexi.eval import calibration, induction, reasoning
from lexi.eval import tasks as T
from lexi.model.lm import LanguageModel

CHAR = CharTok()
SEP = T.Format.from_tokenizer(CHAR).sep


def kjv_stream(docs, n_docs=20):
    """Chapters as the suite's evaluation stream has them: bos, then the chapter's ids."""
    return np.asarray([i for d in docs[:n_docs] for i in [CHAR.bos_id] + CHAR.encode(d) if i < 128], np.int32)


def model_like_score(examples, generated, logp_NxV):
    """reasoning.score fed like the model path: generations, candidate log-probs gathered from
    full next-token distributions, and the answer's log-prob (first token only here)."""
    answer_logp = [row[e.answer_ids[0]] for row, e in zip(logp_NxV, examples)]
    return reasoning.score(generated, T.gather_candidates(logp_NxV, examples), answer_logp, examples)


@pytest.mark.parametrize("task,params", [("lookup", {"num_pairs": 4}), ("lookup", {"num_pairs": 16}),
                                         ("permutation", {})])
def test_oracle_scores_one_and_a_uniform_predictor_sits_exactly_at_chance(task, params):
    exs = T.make_examples(task, 300, 0, CHAR, **params)
    oracle = np.full((len(exs), CHAR.vocab_size), -30.0)
    oracle[np.arange(len(exs)), [e.answer_ids[0] for e in exs]] = 0.0
    s = model_like_score(exs, [e.answer_ids for e in exs], oracle)
    assert s["exact_match"] == 1.0 and s["top1_among_candidates"] == 1.0 and s["mean_rank"] == 1.0
    flat = np.full((len(exs), CHAR.vocab_size), -math.log(CHAR.vocab_size))
    s = model_like_score(exs, [[CHAR.eos_id] * len(e.answer_ids) for e in exs], flat)
    assert s["exact_match"] == 0.0
    assert s["top1_among_candidates"] == pytest.approx(s["top1_chance"])  # ties share first place
    assert s["mean_rank"] == pytest.approx(s["mean_rank_chance"])
    if task == "lookup":  # values may repeat, so fewer distinct candidates than pairs
        assert 1 / params["num_pairs"] <= s["top1_chance"] < 1 / params["num_pairs"] + 0.1
    else:
        assert s["top1_chance"] == 0.25 and s["num_candidates"] == 4


def test_constant_predictor_scores_its_hit_rate_and_ranks_at_chance():
    exs = T.make_examples("lookup", 2000, 1, CHAR, num_pairs=4)
    t = 97  # "a": one of the 121 ids symbols are drawn from
    logp = np.full((len(exs), CHAR.vocab_size), -10.0)
    logp[:, t] = -0.01
    s = model_like_score(exs, [[t] for _ in exs], logp)
    assert s["exact_match"] == sum(e.answer_ids == [t] for e in exs) / len(exs) < 0.02
    # it prefers a candidate only when "a" is one: rarely, so ranks stay near chance
    assert abs(s["top1_among_candidates"] - s["top1_chance"]) < 0.03
    assert abs(s["mean_rank"] - s["mean_rank_chance"]) < 0.1


def test_candidate_rank_shares_ties():
    assert T.candidate_rank([-1.0, -2.0, -3.0], 0) == (1.0, 1.0)
    assert T.candidate_rank([-1.0, -2.0, -3.0], 2) == (3.0, 0.0)
    assert T.candidate_rank([-1.0, -1.0, -1.0, -1.0], 1) == (2.5, 0.25)
    assert T.candidate_rank([-1.0, -2.0, -2.0], 1) == (2.5, 0.0)
    ex = T.Example([5, 4], [9], ((9,), (7,)))
    assert T.candidate_ids(ex) == [9, 7]
    with pytest.raises(ValueError, match="not among the candidates"):
        T.candidate_ids(T.Example([5, 4], [8], ((9,), (7,))))


@pytest.mark.parametrize("symbol_len", [1, 2])
def test_copier_solves_lookup_and_the_unigram_counter_scores_zero(kjv_docs, symbol_len):
    """The calibration lines of every report: 'match key + arrow, copy what followed' is perfect
    on LookUp, also after real text; counting unigrams never answers (punctuation wins)."""
    text = kjv_stream(kjv_docs)
    for offset in (0, 40):
        exs = T.make_examples("lookup", 200, 0, CHAR, symbol_len=symbol_len, num_pairs=16)
        ctxs = reasoning.place_prompts(exs, CHAR.bos_id, SEP, offset=offset, text_tokens=text)
        cal = calibration.evaluate(ctxs, exs, CHAR.vocab_size)
        assert cal["copier_exact_match"] == 1.0 and cal["copier_top1"] == 1.0
        assert cal["unigram_exact_match"] == 0.0
        assert cal["top1_chance"] < 0.1
    perm = T.make_examples("permutation", 200, 0, CHAR)
    cal = calibration.evaluate(reasoning.place_prompts(perm, CHAR.bos_id, SEP), perm, CHAR.vocab_size)
    assert cal["copier_exact_match"] < 0.05  # copying alone does not reorder


def test_followers_finds_the_longest_earlier_match():
    assert calibration.followers(np.array([1, 2, 3, 9, 2, 3, 8, 5, 3])).tolist() == [9, 8]  # "3" twice
    assert calibration.followers(np.array([1, 2, 3, 9, 7, 2, 3, 8, 2, 3])).tolist() == [9, 8]  # "2 3"
    assert calibration.followers(np.array([4, 2, 3, 9, 1, 2, 3, 8, 1, 2, 3])).tolist() == [8]  # "1 2 3"
    assert calibration.followers(np.array([1, 2, 3])).tolist() == []


def test_offset_places_real_text_before_prompts_that_end_together(kjv_docs):
    text = kjv_stream(kjv_docs)
    exs = T.make_examples("lookup", 30, 3, CHAR, num_pairs=4)
    plain = reasoning.place_prompts(exs, CHAR.bos_id, SEP)
    assert plain == [[CHAR.bos_id] + e.prompt_ids for e in exs]
    ctxs = reasoning.place_prompts(exs, CHAR.bos_id, SEP, offset=50, text_tokens=text, seed=3)
    assert ctxs == reasoning.place_prompts(exs, CHAR.bos_id, SEP, offset=50, text_tokens=text, seed=3)
    starts = reasoning.text_starts(text, 50, len(exs), 3, CHAR.bos_id)
    assert len(set(starts.tolist())) > 25  # different text before different examples
    for c, e, s in zip(ctxs, exs, starts):
        assert len(c) == 1 + 50 + len(SEP) + len(e.prompt_ids) == len(plain[0]) + 51  # the answer comes at one place
        assert c[0] == CHAR.bos_id and c[-len(e.prompt_ids):] == e.prompt_ids and c[51:52] == list(SEP)
        assert c[1:51] == text[s:s + 50].tolist() and CHAR.bos_id not in c[1:51]  # real text of one chapter
    assert any(" the " in CHAR.decode(c[1:51]) for c in ctxs)


def test_prompts_that_do_not_fit_and_bad_offsets_are_clear_errors(kjv_docs):
    text = kjv_stream(kjv_docs, 3)
    with pytest.raises(UserError, match=r"lookup_16: .* need 84 positions, but the model's context is 64; lower "
                                        r"--reasoning-offset or the prompt size \(--lookup-pairs\)"):
        reasoning.check_settings(CHAR, seq_len=64, text_tokens=text)
    with pytest.raises(UserError, match=r"permutation: .* need 70 positions.*--permutation-items or "
                                        r"--permutation-demos"):
        reasoning.check_settings(CHAR, seq_len=64, lookup_pairs=(4, 8))
    reasoning.check_settings(CHAR, seq_len=64, lookup_pairs=(4, 8), task_params={"permutation": {"num_demos": 2}},
                             induction_length=32)
    with pytest.raises(UserError, match="lookup: bos, 60 tokens of text"):
        reasoning.check_settings(CHAR, seq_len=64, lookup_pairs=(4,), offset=60, text_tokens=text)
    with pytest.raises(UserError, match="lower --induction-length to at most 32"):
        reasoning.check_settings(CHAR, seq_len=64, lookup_pairs=(4,), induction_length=33)
    with pytest.raises(UserError, match="no stretch of 100000 tokens"):
        reasoning.check_settings(CHAR, seq_len=10 ** 6, offset=100_000, text_tokens=text)
    with pytest.raises(UserError, match="must be >= 0"):
        reasoning.check_settings(CHAR, seq_len=64, lookup_pairs=(4,), offset=-1)


def test_task_specs_name_lookup_sizes():
    specs = reasoning.task_specs()
    assert specs == {"lookup": ("lookup", {"num_pairs": 4}), "lookup_16": ("lookup", {"num_pairs": 16}),
                     "permutation": ("permutation", {})}
    assert list(reasoning.task_specs(task_params={"lookup": {"num_pairs": 8}})) == ["lookup_8", "permutation"]


def test_induction_windows_and_copy_losses_with_rule_based_predictors():
    """A copier drives the second copy's loss to ~0; a unigram counter keeps it high."""
    length = 24
    w = induction.induction_windows(CHAR, length, 40, seed=0)
    assert w["inputs"].shape == w["targets"].shape == (40, 2 * length)
    assert (w["inputs"][:, 0] == CHAR.bos_id).all()
    assert (w["targets"][:, :length] == w["targets"][:, length:]).all()
    assert not np.isin(w["targets"], CHAR.special_ids).any()

    def nll(predict):
        return np.asarray([[-predict(x[:t + 1])[y[t]] for t in range(2 * length)]
                           for x, y in zip(w["inputs"], w["targets"])])

    copy = induction.copy_losses(nll(calibration.copier(CHAR.vocab_size)), length)
    count = induction.copy_losses(nll(calibration.unigram(CHAR.vocab_size)), length)
    assert set(copy) == {"first_copy_loss", "second_copy_loss", "induction_gain"}
    assert copy["second_copy_loss"] < 0.3 < 4.0 < copy["first_copy_loss"]
    assert copy["induction_gain"] > 3.5
    assert count["second_copy_loss"] > 2.5 and count["induction_gain"] < 1.5


def copy_next(seq_BxS):
    """The in-context copy rule for every position t: find the longest earlier stretch that
    equals the sequence's suffix ending at t (the latest of equals), predict what followed it;
    -1 where nothing matches. Ids < 0 are empty slots that match nothing."""
    b, s = seq_BxS.shape
    valid = seq_BxS >= 0
    eq_BxSxS = (seq_BxS[:, :, None] == seq_BxS[:, None, :]) & valid[:, :, None] & valid[:, None, :]

    def row(prev_BxS, eq_BxS):  # common suffix length ending at (t, j) = eq * (1 + that at (t-1, j-1))
        cur = eq_BxS * (1 + jnp.pad(prev_BxS, ((0, 0), (1, 0)))[:, :-1])
        return cur, cur

    _, run_SxBxS = jax.lax.scan(row, jnp.zeros((b, s), jnp.int32), eq_BxSxS.transpose(1, 0, 2).astype(jnp.int32))
    run_BxSxS = jnp.where(jnp.tri(s, k=-1, dtype=bool), run_SxBxS.transpose(1, 0, 2), 0)  # earlier j < t only
    best_BxS = jnp.argmax(run_BxSxS * s + jnp.arange(s), axis=-1)
    found = jnp.take_along_axis(run_BxSxS, best_BxS[..., None], axis=-1)[..., 0] > 0
    return jnp.where(found, jnp.take_along_axis(seq_BxS, jnp.minimum(best_BxS + 1, s - 1), axis=1), -1)


class CopyLM(LanguageModel):
    """A LanguageModel whose backbone is `copy_next`: its hidden state is the one-hot of the
    copied id (d_model = vocabulary), read out by a real tied embedding, so the table's
    diagonal is the logit margin (copy_lm). Decoding keeps the ids seen so far in the "cache"
    collection, as the real backbone keeps keys and values."""

    def setup(self):
        pass  # no transformer: `hidden` is the whole model

    @nn.compact
    def hidden(self, inputs_BxL, ctx, segment_ids_BxL=None, positions_BxL=None, *, deterministic=True,
               decode=False, cache_len=0):
        b, length = inputs_BxL.shape
        first, seq_BxS = 0, inputs_BxL
        if decode:
            seen = self.variable("cache", "ids", lambda: jnp.full((b, cache_len), -1, jnp.int32))
            end = self.variable("cache", "end", lambda: jnp.zeros((), jnp.int32))
            first = end.value
            seq_BxS = seen.value = jax.lax.dynamic_update_slice(seen.value, inputs_BxL, (0, first))
            end.value = first + length
        nxt_BxL = jax.lax.dynamic_slice_in_dim(copy_next(seq_BxS), first, length, axis=1)
        return jax.nn.one_hot(nxt_BxL, self.embedding.d_model)  # -1 (no match): all zeros, uniform logits


def copy_lm(margin: float):
    """(model, variables) as `lexi eval` passes them to reasoning.evaluate: logits `margin` on the
    copied id, 0 elsewhere; margin 0 gives uniform logits (one model: compiled once for both)."""
    v = CHAR.vocab_size
    emb = TrainableEmbedding(vocab_size=v, d_model=v, tied=True, logit_scale=1.0)
    return CopyLM(None, emb), {"params": {"embedding": {"table": margin * jnp.eye(v, dtype=jnp.float32)}}}


def test_copy_next_follows_the_longest_latest_match():
    seq = jnp.asarray([[4, 2, 3, 9, 1, 2, 3, 8, 1, 2, 3, -1], [5, 6, 5, 6, 5, 7, 5, -1, -1, -1, -1, -1]])
    assert copy_next(seq).tolist() == [[-1, -1, -1, -1, -1, 3, 9, -1, 2, 3, 8, -1],
                                       [-1, -1, 6, 5, 6, -1, 7, -1, -1, -1, -1, -1]]  # 5: last seen before 7


@pytest.fixture(scope="module")
def reasoning_results(kjv_docs):
    """reasoning.evaluate, as `lexi eval --suite reasoning` calls it, for the copy rule and a
    model with uniform logits: LookUp with 4 and 16 pairs, both samplers, 48 examples each."""
    kw = dict(examples=48, seed=0, task_names=("lookup",), batch_size=48, lookup_pairs=(4, 16),
              induction_length=16, seq_len=128)
    train = kjv_stream(kjv_docs)
    return {name: reasoning.evaluate(*copy_lm(c), CHAR, train, **kw) for name, c in (("copy", 50.0), ("uniform", 0.0))}


def test_copy_model_solves_lookup_through_the_eval_path(reasoning_results):
    res = reasoning_results["copy"]
    assert set(res["detail"]) == {"lookup", "lookup_16"} and res["examples"] == 48
    for key in ("lookup", "lookup_16"):
        for sampler in reasoning.SAMPLERS:
            d = res["detail"][key][sampler]
            assert res[key][sampler] == d["exact_match"] == 1.0, (key, sampler, d)
            assert d["top1_among_candidates"] == 1.0 and d["mean_rank"] == 1.0, (key, sampler, d)
            assert d["answer_logprob"] > -1e-6  # all mass on every answer id, under teacher forcing too
            assert res["calibration"][key][sampler]["copier_exact_match"] == 1.0  # the rule-based copier agrees
    assert res["detail"]["lookup_16"]["uniform"]["top1_chance"] < 0.1
    ind = res["induction"]
    # the second copy's first id is a guess (the first copy's last id may have occurred before), the rest copied
    assert ind["second_copy_loss"] < 0.25 * ind["first_copy_loss"] and ind["induction_gain"] > 5


def test_uniform_logits_land_at_chance_through_the_eval_path(reasoning_results):
    res = reasoning_results["uniform"]
    for key, pairs in (("lookup", 4), ("lookup_16", 16)):
        for sampler in reasoning.SAMPLERS:
            d = res["detail"][key][sampler]
            assert d["exact_match"] == 0.0, (key, sampler, d)  # greedy picks id 0 (pad), never an answer
            assert d["top1_among_candidates"] == pytest.approx(d["top1_chance"], abs=1e-12)  # ties share first
            assert d["mean_rank"] == pytest.approx(d["mean_rank_chance"], abs=1e-12)
            assert 1 / pairs <= d["top1_chance"] < 1 / pairs + 0.15
            assert d["answer_logprob"] == pytest.approx(-math.log(CHAR.vocab_size))  # one id per answer
    ind = res["induction"]
    assert ind["first_copy_loss"] == pytest.approx(math.log(CHAR.vocab_size), rel=1e-6)
    assert ind["induction_gain"] == pytest.approx(0.0, abs=1e-5)


def test_report_reads_results_from_before_the_details():
    from lexi.eval import report

    old = {"reasoning": {"lookup": {"uniform": 0.5, "frequency": 0.25}, "permutation": {"uniform": 0.0,
                                                                                       "frequency": 0.0},
                         "examples": 4}}
    assert report.summary_rows(old) == {"lookup (uniform)": 0.5, "lookup (frequency)": 0.25,
                                        "permutation (uniform)": 0.0, "permutation (frequency)": 0.0}
    assert report.reasoning_section("old", old["reasoning"]) == []
    assert "| lookup (uniform) | 0.500 |" in report.markdown_table({"old": old})


@pytest.mark.parametrize("value", ["4,x", "0", ""])
def test_lookup_pairs_flag_is_checked(value, tmp_path, capsys):
    from lexi.cli import main

    assert main(["eval", "--workdir", str(tmp_path), "--lookup-pairs", value]) == 2
    assert "--lookup-pairs takes comma-separated positive integers" in capsys.readouterr().err
