"""Multiple-choice cloze questions made from a corpus's own validation text, for `--suite mc`.

A question is `context_chars` of a document ending at a word boundary; the right choice is the
`choice_chars` that follow it, the others are spans of the same length from other documents (each
starting at a word boundary). A model picks the true continuation only as far as it has learned
the corpus's words and syntax, so the set ranks models of one corpus without any prompt format:
the lines are "style": "continuation" (lexi/eval/mc.py). Choices cut at the same length keep
the per-token and per-byte scores comparable.

    python -m lexi.eval.cloze --corpus kjv --questions 400 --out kjv_cloze.jsonl
    lexi eval --workdir RUN --suite mc --mc-file kjv_cloze.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from lexi.errors import UserError


def _word_starts(text: str) -> np.ndarray:
    """Offsets of the characters that follow whitespace (where a span may start or end)."""
    return np.asarray([i for i in range(1, len(text)) if text[i - 1].isspace() and not text[i].isspace()], np.int64)


def make_questions(docs: Sequence[str], n: int, *, seed: int = 0, context_chars: int = 200, choice_chars: int = 40,
                   num_choices: int = 4) -> list[dict]:
    """`n` questions; the right choice's position is uniform over the `num_choices` slots."""
    if num_choices < 2:
        raise UserError(f"a multiple-choice question needs at least 2 choices, got {num_choices}")
    usable = []  # (document, offsets where its right choice may start)
    for doc in docs:
        s = _word_starts(doc)
        s = s[(s >= context_chars) & (s + choice_chars <= len(doc))]
        if len(s):
            usable.append((doc, s))
    if len(usable) < num_choices:
        raise UserError(f"{len(usable)} documents hold {context_chars} + {choice_chars} characters; a question takes its "
                        f"{num_choices} choices from {num_choices} different documents")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picks = rng.choice(len(usable), num_choices, replace=False)
        spans = []
        for p in picks:
            doc, starts = usable[p]
            at = int(starts[rng.integers(len(starts))])
            spans.append((doc, at))
        doc, at = spans[0]
        right = doc[at:at + choice_chars]
        others = [d[a:a + choice_chars] for d, a in spans[1:]]
        answer = int(rng.integers(num_choices))
        choices = others[:answer] + [right] + others[answer:]
        out.append({"question": doc[at - context_chars:at], "choices": choices, "answer": answer,
                    "style": "continuation"})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lexi.eval.cloze", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="kjv", help="an embedded corpus name (kjv, python_code, ...)")
    ap.add_argument("--split", default="validation")
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--context-chars", type=int, default=200)
    ap.add_argument("--choice-chars", type=int, default=40)
    ap.add_argument("--choices", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        return _write(a)
    except UserError as e:
        print(f"error: {e}")
        return 2


def _write(a) -> int:
    from lexi.config import base_config
    from lexi.data.corpora import get_corpus

    data = base_config().data
    data.corpus = a.corpus
    docs = list(get_corpus(data).documents(a.split))
    qs = make_questions(docs, a.questions, seed=a.seed, context_chars=a.context_chars, choice_chars=a.choice_chars,
                        num_choices=a.choices)
    Path(a.out).write_text("".join(json.dumps(q) + "\n" for q in qs))
    print(f"wrote {len(qs)} questions from {a.corpus} ({a.split}, {len(docs)} documents) to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
