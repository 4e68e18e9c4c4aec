"""Multiple-choice questions scored by log-likelihood (MMLU-style files a user supplies).

Each line of the JSONL file: {"question": str, "choices": [str, ...], "answer": int | "B"}
(an index, or a letter A, B, C, ...). The prompt is "<question>\\nAnswer:" and each choice
is scored as the continuation " <choice>". A line with "style": "continuation" (cloze sets
made from a corpus's text, lexi/eval/cloze.py) is scored as <question><choice>, both as they
stand. A choice scores the summed log-probability of its tokens (`accuracy`) and the same
divided by its UTF-8 bytes (`accuracy_per_byte`, which does not favour short answers).
Sampling one letter, as some papers do, is noisier and is not offered. All choices of a
question share one evaluation context, so a lexinvariant model sees the same random
embeddings for each.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lexi.data.packing import sequence_windows
from lexi.errors import UserError
from lexi.eval import scoring

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
STYLES = ("answer", "continuation")  # "<q>\nAnswer: <choice>" | "<q><choice>"


def load_questions(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--mc-file {path} does not exist")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from e
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not isinstance(q.get("choices"), list) \
                or len(q["choices"]) < 2 or not all(isinstance(c, str) for c in q["choices"]):
            raise UserError(f'{path}:{n}: expected {{"question": str, "choices": [str, str, ...], "answer": ...}}')
        ans = q.get("answer")
        if isinstance(ans, str) and len(ans) == 1 and ans.upper() in LETTERS:
            ans = LETTERS.index(ans.upper())
        if not isinstance(ans, int) or isinstance(ans, bool) or not 0 <= ans < len(q["choices"]):
            raise UserError(f"{path}:{n}: answer {q.get('answer')!r} is not a choice index or letter")
        style = q.get("style", "answer")
        if style not in STYLES:
            raise UserError(f"{path}:{n}: style {style!r} is not one of {STYLES}")
        out.append({"question": q["question"], "choices": q["choices"], "answer": ans, "style": style})
    if not out:
        raise UserError(f"--mc-file {path} holds no questions")
    return out


def _prompt_and_choice(q: dict, choice: str) -> tuple[str, str]:
    if q.get("style", "answer") == "continuation":
        return q["question"], choice
    return q["question"] + "\nAnswer:", " " + choice


def _windows(tokenizer, prompt: str, choice: str, seq_len: int):
    p = [tokenizer.bos_id] + tokenizer.encode(prompt)
    c = tokenizer.encode(choice)
    if not c:
        raise UserError(f"choice {choice!r} encodes to no tokens")
    seq = (p + c)[-(seq_len + 1):]  # keep the end: the choice and as much question as fits
    n_choice = min(len(c), len(seq) - 1)
    return seq, n_choice


def _choice_logprobs(model, variables, tokenizer, prompts_choices: list[tuple[str, str]], rows: list[int], *,
                     seq_len: int, seed: int, batch_size: int) -> np.ndarray:
    """float[N]: log p(choice | bos + prompt), summed over the choice's tokens, one per pair."""
    seqs, n_choice = zip(*(_windows(tokenizer, p, c, seq_len) for p, c in prompts_choices))
    windows = sequence_windows(seqs, tokenizer.pad_id, max(len(s) for s in seqs) - 1, scored=n_choice)
    mask = windows["loss_mask"]  # only the choice's tokens are scored
    nll = scoring.token_nll(model, variables, windows, seed=seed, batch_size=batch_size, rows=np.asarray(rows))
    return -(nll * mask).sum(axis=1)


def evaluate(model, variables, tokenizer, questions: list[dict], *, seq_len: int, seed: int = 0,
             batch_size: int = 16) -> dict:
    """Accuracy by the choice's log-probability, per byte, and calibrated: log p(choice | question)
    - log p(choice | the prompt without its question), which removes how likely a choice is on its
    own (Holtzman et al. 2021's domain-conditional PMI). A weak model ranks cloze choices mostly by
    their own likelihood, so only the calibrated score asks whether it used the question."""
    pairs, bare, rows = [], [], []
    for qi, q in enumerate(questions):
        for choice in q["choices"]:
            pairs.append(_prompt_and_choice(q, choice))
            bare.append(_prompt_and_choice(dict(q, question=""), choice))
            rows.append(qi)  # every choice of a question, with or without it, shares one evaluation context
    kw = dict(seq_len=seq_len, seed=seed, batch_size=batch_size)
    logp = _choice_logprobs(model, variables, tokenizer, pairs, rows, **kw)
    logp_bare = _choice_logprobs(model, variables, tokenizer, bare, rows, **kw)
    hits, hits_byte, hits_cal, per_question, i = [], [], [], [], 0
    for q in questions:
        k = len(q["choices"])
        lp, lp_bare = logp[i:i + k], logp_bare[i:i + k]
        per_question.append([round(float(v), 4) for v in lp])
        nbytes = np.array([len(_prompt_and_choice(q, c)[1].encode("utf-8")) for c in q["choices"]], np.float64)
        hits.append(int(np.argmax(lp)) == q["answer"])
        hits_byte.append(int(np.argmax(lp / nbytes)) == q["answer"])
        hits_cal.append(int(np.argmax(lp - lp_bare)) == q["answer"])
        i += k
    return {"accuracy": float(np.mean(hits)), "accuracy_per_byte": float(np.mean(hits_byte)),
            "accuracy_calibrated": float(np.mean(hits_cal)), "num_questions": len(questions),
            "chance": float(np.mean([1.0 / len(q["choices"]) for q in questions])),
            "choice_logprobs": per_question}
