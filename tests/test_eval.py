"""The evaluation suite on a briefly trained run: JSON keys, reports, errors, invariants."""
import json
import math

import numpy as np
import pytest

from lexi.errors import UserError
from lexi.eval import decipher
from lexi.eval.suite import compare, run_suite
from lexi.train.loop import train
from test_train import tiny


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("eval_runs")
    out = {}
    for kind in ("lexinvariant", "trainable"):
        cfg = tiny(kind, steps=30)
        cfg.data.seq_len = 64
        train(cfg, root / kind)
        out[kind] = root / kind
    return out


SMALL_REASONING = dict(lookup_pairs=(4, 8), task_params={"permutation": {"num_demos": 2}})  # fits seq_len 64


@pytest.mark.slow
def test_suite_writes_results_report_and_plots(runs):
    res = run_suite(runs["lexinvariant"], examples=20, num_sequences=8, probe_steps=20, reasoning_offset=8,
                    **SMALL_REASONING)
    saved = json.loads((runs["lexinvariant"] / "eval" / "results.json").read_text())
    p, c, r = saved["perplexity"], saved["cipher"], saved["reasoning"]
    assert len(p["loss_by_position"]) == 64 and math.isfinite(p["mean_loss"])
    # character tokenizer on ASCII text: one byte per token
    assert p["bits_per_byte"] == pytest.approx(p["mean_loss"] / math.log(2), rel=1e-6)
    for k in ("plain_loss", "cipher_loss", "key_precision_by_window", "key_precision_last_window",
              "frequency_baseline_precision"):
        assert k in c
    assert 0.0 <= c["key_precision_last_window"] <= 1.0
    assert list(r["tasks"]) == ["lookup", "lookup_8", "permutation"] and r["offset"] == 8 and r["arrow"] == "->"
    for task in ("lookup", "lookup_8", "permutation"):
        for sampler in ("uniform", "frequency"):
            assert 0.0 <= r[task][sampler] <= 1.0
            d, cal = r["detail"][task][sampler], r["calibration"][task][sampler]
            assert d["exact_match"] == r[task][sampler] and 1 <= d["mean_rank"] <= d["num_candidates"]
            assert 0.0 <= d["top1_among_candidates"] <= 1.0 and d["answer_logprob"] < 0
            assert cal["top1_chance"] == d["top1_chance"]
            assert cal["copier_exact_match"] == (1.0 if task.startswith("lookup") else pytest.approx(0, abs=0.1))
    ind = r["induction"]
    assert ind["length"] == 32 and ind["sequences"] == 20
    assert all(math.isfinite(ind[k]) for k in ("first_copy_loss", "second_copy_loss", "induction_gain"))
    assert ind["induction_gain"] == pytest.approx(ind["first_copy_loss"] - ind["second_copy_loss"])
    for name in ("report.md", "loss_by_position.png", "key_precision.png"):
        assert (runs["lexinvariant"] / "eval" / name).stat().st_size > 0
    md = (runs["lexinvariant"] / "eval" / "report.md").read_text()
    for row in ("| lookup (uniform) |", "| lookup_8 (frequency), top-1 among candidates |",
                "| permutation (uniform), chance top-1 |", "| induction gain |", "| lookup_8 | uniform |"):
        assert row in md
    assert res["step"] == 30


def test_teacher_forced_scores_agree_with_plain_scoring(runs):
    """The candidates' log-probs and the answer's come from one pass; they must be what
    token_nll gives for the same sequences with the same evaluation contexts."""
    import numpy as np

    from lexi.eval import reasoning, scoring, tasks
    from lexi.inference import load_for_inference

    run = load_for_inference(runs["lexinvariant"])
    exs = tasks.make_examples("lookup", 6, 0, run.tokenizer, num_pairs=4)
    ctxs = reasoning.place_prompts(exs, run.tokenizer.bos_id, tasks.Format.from_tokenizer(run.tokenizer).sep)
    cand_logp, answer_logp = reasoning.teacher_force(run.model, run.variables, ctxs, exs, seed=0, batch_size=4)
    seqs = np.asarray([c + e.answer_ids for c, e in zip(ctxs, exs)], np.int32)
    nll = scoring.token_nll(run.model, run.variables, {"inputs": seqs[:, :-1], "targets": seqs[:, 1:]}, seed=0)
    np.testing.assert_allclose(answer_logp, -nll[:, -1], rtol=1e-4, atol=1e-5)
    for logp, e, a in zip(cand_logp, exs, answer_logp):
        assert logp[tasks.candidate_ids(e).index(e.answer_ids[0])] == pytest.approx(a, rel=1e-4, abs=1e-5)


def test_reasoning_prompts_must_fit_the_context(runs):
    """At seq_len 64 the default LookUp with 16 pairs does not fit: one clear error, before any
    suite runs."""
    with pytest.raises(UserError, match="lookup_16: .* the model's context is 64"):
        run_suite(runs["trainable"], ["perplexity", "reasoning"])


def test_lexinvariant_is_blind_to_the_cipher_and_standard_is_not(runs):
    """In distribution a cipher changes nothing for a lexinvariant model; a trained standard
    model has learned which letter is which and loses a lot."""
    lex = run_suite(runs["lexinvariant"], ["cipher"], num_sequences=16, probe_steps=5)["cipher"]
    std = run_suite(runs["trainable"], ["cipher"], num_sequences=16, probe_steps=5)["cipher"]
    assert abs(lex["cipher_plain_ratio"] - 1.0) < 0.03
    assert std["cipher_plain_ratio"] > 1.1


@pytest.mark.slow
def test_subword_tokenizers_get_the_token_permutation(tmp_path_factory, cache_dir, kjv_docs):
    """A tokenizer that merges letters (a 400-piece SentencePiece BPE) is enciphered by permuting
    every non-special token: a letter cipher would leave its merged pieces readable (the unicode
    tokenizer with n-grams has every letter as a token too, and was given one). The same
    invariance holds as for letters: the lexinvariant model is blind to it, the standard one is not."""
    from lexi import tokenizers

    root = tmp_path_factory.mktemp("subword_runs")
    (root / "kjv.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in kjv_docs[:120]))
    ngrams = tokenizers.from_config({"kind": "unicode", "num_ngrams": 32, "max_n": 2}, lambda: kjv_docs[:20], root)
    assert len(ngrams.encode("the lord")) < 8 and decipher.alphabet_for(ngrams)[1] is False
    ratios = {}
    for kind in ("lexinvariant", "trainable"):
        cfg = tiny(kind, steps=30)
        cfg.data.update(corpus="text_files", files=str(root / "kjv.jsonl"), val_fraction=0.1, seq_len=64)
        cfg.data.tokenizer.update(kind="sentencepiece", vocab_size=400, model_type="bpe")
        train(cfg, root / kind)
        c = run_suite(root / kind, ["cipher"], num_sequences=16, probe_steps=5, probe_pool=8)["cipher"]
        assert c["cipher_mode"] == "token_permutation"
        assert 0.0 <= c["full_key_precision"] <= 1.0
        ratios[kind] = c["cipher_plain_ratio"]
    assert abs(ratios["lexinvariant"] - 1.0) < 0.05
    assert ratios["trainable"] > 1.1


def test_compare_and_text_file(runs, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("In the beginning was the word. " * 20)
    res = run_suite(runs["trainable"], ["perplexity"], text_file=text, num_sequences=4)
    assert res["perplexity"]["num_sequences"] == 4 and res["evaluated_on"] == str(text)
    own = run_suite(runs["trainable"], ["perplexity"], num_sequences=4, corpus="kjv")  # the run's own corpus
    code = run_suite(runs["trainable"], ["perplexity"], num_sequences=4, corpus="python_code")
    assert own["evaluated_on"] == "kjv (validation split)" and code["evaluated_on"] == "python_code (validation split)"
    assert code["perplexity"]["mean_loss"] > own["perplexity"]["mean_loss"] + 0.1  # a KJV model reads code worse
    run_suite(runs["lexinvariant"], ["perplexity"], num_sequences=4)  # no reliance on other tests' order
    out = compare([runs["lexinvariant"], runs["trainable"]], tmp_path / "cmp")
    assert "lexinvariant" in out["table"] and "trainable" in out["table"]
    assert (tmp_path / "cmp" / "loss_by_position.png").exists()


def test_user_errors(runs, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="is empty"):
        run_suite(runs["trainable"], ["perplexity"], text_file=empty)
    with pytest.raises(UserError, match="not a lexi run directory"):
        run_suite(tmp_path, ["perplexity"])
    with pytest.raises(UserError, match="unknown suite"):
        run_suite(runs["trainable"], ["nope"])
    with pytest.raises(UserError, match="give --corpus or --text-file, not both"):
        run_suite(runs["trainable"], ["perplexity"], text_file=empty, corpus="kjv")


def test_alphabet_detection():
    from lexi import tokenizers

    ids, letters = decipher.alphabet_for(tokenizers.load("char"))
    assert letters and ids.tolist() == [ord(c) for c in "abcdefghijklmnopqrstuvwxyz"]
    ids, letters = decipher.alphabet_for(tokenizers.load("byte"))
    assert letters and len(ids) == 26


def test_multiple_choice_by_log_likelihood_end_to_end(tmp_path, cache_dir):
    """A tiny model trained on "...?\nAnswer: yes" lines prefers " yes" to " zebra"; the suite
    writes accuracy, per-byte accuracy and chance; bad files are clear errors."""
    from lexi.eval import mc

    lines = [json.dumps({"text": f"Is thing {i} here?\nAnswer: yes\n" * 3}) for i in range(200)]
    (tmp_path / "qa.jsonl").write_text("\n".join(lines) + "\n")
    cfg = tiny(steps=150, lr=1e-2)
    cfg.data.update(corpus="text_files", files=str(tmp_path / "qa.jsonl"), val_fraction=0.1)
    train(cfg, tmp_path / "run")
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("\n".join(json.dumps(q) for q in [
        {"question": "Is thing 7 here?", "choices": ["zebra", "yes"], "answer": 1},
        {"question": "Is thing 9 here?", "choices": ["yes", "zebra", "qqq"], "answer": "A"},
    ]) + "\n")
    res = run_suite(tmp_path / "run", ["mc"], mc_file=qfile)
    assert res["mc"]["accuracy"] == 1.0 and res["mc"]["accuracy_per_byte"] == 1.0
    assert res["mc"]["num_questions"] == 2 and math.isclose(res["mc"]["chance"], (1 / 2 + 1 / 3) / 2)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 7}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:1: answer 7 is not a choice index or letter"):
        mc.load_questions(bad)
    with pytest.raises(UserError, match="needs --mc-file"):
        run_suite(tmp_path / "run", ["mc"])


def test_cipher_reports_every_decoding_and_every_layer(runs, tmp_path):
    """Three decodings for the probe and the baseline, per layer and for the chosen layer
    (chosen by held-out loss); the old keys are the vote's; report.md shows them."""
    c = run_suite(runs["trainable"], ["cipher"], num_sequences=8, probe_steps=20, probe_pool=16,
                  out_dir=tmp_path)["cipher"]
    assert c["probe_pool"] == 16 and c["probe_steps"] == 20
    assert [layer["name"] for layer in c["by_layer"]] == ["embedding", "block 1", "final norm"]
    losses = [layer["heldout_loss"] for layer in c["by_layer"]]
    assert c["probe_layer"] == losses.index(min(losses))
    assert c["key_precision"] == c["by_layer"][c["probe_layer"]]["key_precision"]
    for name in ("key_precision", "frequency_baseline"):
        assert list(c[name]) == ["vote", "letters", "assignment"]
        for curve in c[name].values():
            assert len(curve["by_window"]) == len(c["window_starts"]) and curve["last_window"] == curve["by_window"][-1]
            assert all(0.0 <= v <= 1.0 for v in curve["by_window"])
    assert c["key_precision_by_window"] == c["key_precision"]["vote"]["by_window"]
    assert c["frequency_baseline_precision"] == c["frequency_baseline"]["vote"]["last_window"]
    md = (tmp_path / "report.md").read_text()
    for row in ("| key precision, last window (assignment) |", "| frequency baseline, last window (letters) |",
                "| cipher probe layer |", "## Cipher key recovery by layer"):
        assert row in md
    with pytest.raises(UserError, match="--probe-pool must be at least 2"):
        run_suite(runs["trainable"], ["cipher"], probe_pool=1)


def test_bits_per_byte_by_hand_with_multi_byte_tokens(monkeypatch):
    """Breaks if bits/byte counts tokens, characters, or bytes of pieces decoded one by one:
    'a' (1 byte), 'é' (2), '中' (3) and an emoji as four byte-fallback tokens (4 bytes only when
    decoded together), scored 1, 2, 3 and 4 x 1 bits, so exactly 10 bits over 10 bytes."""
    from lexi import tokenizers
    from lexi.eval import perplexity, scoring

    tok = tokenizers.load("unicode")
    ids = tok.encode("aé中😀")
    assert len(ids) == 7  # the emoji is four byte tokens
    targets = np.asarray([ids + [tok.pad_id]], np.int32)
    windows = {"inputs": targets, "targets": targets, "loss_mask": np.asarray([[1] * 7 + [0]], np.int32)}
    bits = np.asarray([[1, 2, 3, 1, 1, 1, 1, 99]], np.float64)
    monkeypatch.setattr(scoring, "token_nll", lambda *a, **k: bits * math.log(2))
    res = perplexity.evaluate(None, None, tok, windows, smooth=1)
    assert res["bits_per_byte"] == pytest.approx(10 / 10)
    assert res["mean_loss"] == pytest.approx(10 * math.log(2) / 7)


def test_cloze_questions_come_from_the_text_and_score_as_continuations():
    """The right choice is the text that follows the context; the others are spans of other
    documents; a continuation-style line is scored as question + choice, nothing added."""
    from lexi import tokenizers
    from lexi.eval import cloze, mc

    docs = [" ".join(f"w{d}x{i}" for i in range(200)) for d in range(6)]
    qs = cloze.make_questions(docs, 60, seed=3, context_chars=50, choice_chars=12, num_choices=4)
    for q in qs:
        doc = next(d for d in docs if q["question"] in d)
        right = q["choices"][q["answer"]]
        assert q["question"] + right in doc and q["style"] == "continuation"
        assert all(len(c) == 12 for c in q["choices"])
        assert all(c not in doc for i, c in enumerate(q["choices"]) if i != q["answer"])  # other documents
    assert set(q["answer"] for q in qs) == {0, 1, 2, 3}
    assert cloze.make_questions(docs, 5, seed=3) == cloze.make_questions(docs, 5, seed=3)
    with pytest.raises(UserError, match="documents hold"):
        cloze.make_questions(docs[:3], 5, context_chars=50, choice_chars=12, num_choices=4)
    tok = tokenizers.load("char")
    seq, k = mc._windows(tok, *mc._prompt_and_choice(qs[0], "abc"), 1000)
    assert seq == [tok.bos_id] + tok.encode(qs[0]["question"] + "abc") and k == 3
    seq, k = mc._windows(tok, *mc._prompt_and_choice({"question": "Q?"}, "abc"), 1000)
    assert seq == [tok.bos_id] + tok.encode("Q?\nAnswer: abc") and k == 4


def test_mc_choices_of_a_question_share_the_lexinvariant_draw(runs, tmp_path):
    """A lexinvariant model draws its random embeddings per evaluation context: the choices of one
    question must share one draw, or identical choices would get different log-probabilities
    and the comparison would be between draws, not answers."""
    qfile = tmp_path / "dup.jsonl"
    qs = [{"question": f"and the lord said unto {w}, ", "choices": ["go thy way", "go thy way", "the king"],
           "answer": 0, "style": "continuation"} for w in ("moses", "aaron", "david", "samuel")]
    qfile.write_text("".join(json.dumps(q) + "\n" for q in qs))
    res = run_suite(runs["lexinvariant"], ["mc"], mc_file=qfile)["mc"]
    lps = res["choice_logprobs"]
    assert len(lps) == 4 and all(lp[0] == pytest.approx(lp[1], abs=2e-4) for lp in lps)
    assert len({lp[0] for lp in lps}) > 1  # another question, another draw


def test_mc_calibrated_accuracy_subtracts_the_choice_alone(monkeypatch):
    """Raw log-likelihood picks the choice that is likely on its own; the calibrated score picks
    the one the question made more likely than it is alone (and sees the bare prompts)."""
    from lexi.eval import mc

    seen = []

    def fake(model, variables, tok, pairs, rows, **kw):
        seen.append(pairs)
        bare = pairs[0][0] in ("", "\nAnswer:")
        return np.asarray([-9.0, -3.0] if bare else [-5.0, -4.0])

    monkeypatch.setattr(mc, "_choice_logprobs", fake)
    q = {"question": "Q", "choices": ["rare", "common"], "answer": 0, "style": "continuation"}
    res = mc.evaluate(None, None, None, [q], seq_len=8)
    assert res["accuracy"] == 0.0 and res["accuracy_calibrated"] == 1.0
    assert seen == [[("Q", "rare"), ("Q", "common")], [("", "rare"), ("", "common")]]
