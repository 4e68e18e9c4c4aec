"""In-context reasoning (Huang et al. 2023, tables 1-2): LookUp and Permutation, symbols drawn
uniformly from the vocabulary or by corpus frequency. Tasks come from the registry in
tasks.py, so a new task is one function.

Exact match of greedy generations is the paper's score, and it is all-or-nothing: small
models sit at 0.000 while already preferring the right value. So every task and sampler is
also scored by teacher forcing (one forward pass over prompt + answer): the rank of the
answer's first token among the prompt's candidates, and the answer's log-probability.
Rule-based predictors (calibration.py) go through the same scoring on the same inputs, and an
induction score (induction.py) measures copying on its own.

Where the prompt sits matters: in the first few dozen positions a lexinvariant model is still
near uniform, so `offset` > 0 puts that many tokens of real evaluation text (and one
separator) before the prompt, in the same context.

results.json, under "reasoning" (the first three keys are as they always were):
  [task][sampler]                  exact match, float
  examples                         examples per task and sampler
  detail[task][sampler]            exact_match, mean_rank, top1_among_candidates, top1_chance,
                                   mean_rank_chance, num_candidates, answer_logprob (nats, the
                                   whole answer, mean over examples)
  calibration[task][sampler]       copier_exact_match, copier_top1, unigram_exact_match,
                                   unigram_top1, top1_chance: the rule-based predictors
  induction                        first_copy_loss, second_copy_loss, induction_gain, ...
  tasks[task]                      {"task": registered name, "params": {...}}
  offset                           tokens of text before each prompt
Task keys: "lookup" is LookUp with 4 pairs (the paper's), "lookup_N" with N pairs,
"permutation" Permutation.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lexi.errors import UserError
from lexi.eval import calibration, induction, scoring, tasks
from lexi.generate import generate

DEFAULT_TASKS = ("lookup", "permutation")
SAMPLERS = ("uniform", "frequency")
PAPER_PAIRS = 4
DEFAULT_LOOKUP_PAIRS = (PAPER_PAIRS, 16)
_TEXT_STREAM = 0x7e47  # the preceding text's draws, apart from the examples' own


def task_specs(task_names: Sequence[str] = DEFAULT_TASKS, task_params: dict | None = None,
               lookup_pairs: Sequence[int] = DEFAULT_LOOKUP_PAIRS) -> dict[str, tuple[str, dict]]:
    """Result key -> (registered task, its parameters). LookUp runs once per entry of
    `lookup_pairs`, unless task_params["lookup"] fixes num_pairs itself."""
    task_params = task_params or {}
    specs: dict[str, tuple[str, dict]] = {}
    for name in task_names:
        params = dict(task_params.get(name, {}))
        if name != "lookup":
            specs[name] = (name, params)
            continue
        for n in ([params.pop("num_pairs")] if "num_pairs" in params else lookup_pairs):
            specs["lookup" if n == PAPER_PAIRS else f"lookup_{n}"] = ("lookup", {**params, "num_pairs": int(n)})
    return specs


def text_starts(text_tokens: np.ndarray, length: int, n: int, seed: int, bos_id: int) -> np.ndarray:
    """Start of example i's preceding text: a stretch of `length` tokens without bos (inside
    one document), drawn from (seed, i) alone."""
    is_bos = np.concatenate([[0], np.cumsum(np.asarray(text_tokens) == bos_id)])
    valid = np.flatnonzero(is_bos[length:] == is_bos[:-length]) if len(text_tokens) >= length else np.zeros(0)
    if not len(valid):
        raise UserError(f"no stretch of {length} tokens of the evaluation text lies inside one document; "
                        "lower --reasoning-offset")
    return np.asarray([valid[np.random.default_rng([seed, i, _TEXT_STREAM]).integers(len(valid))] for i in range(n)])


def place_prompts(examples: Sequence[tasks.Example], bos_id: int, sep: Sequence[int], *, offset: int = 0,
                  text_tokens: np.ndarray | None = None, seed: int = 0) -> list[list[int]]:
    """What the model reads before answering: bos, then (offset > 0) `offset` tokens of real
    text and one separator, then the prompt. Prompts of one length end at one position."""
    if offset < 0:
        raise UserError(f"--reasoning-offset must be >= 0, got {offset}")
    if offset == 0:
        return [[bos_id] + list(e.prompt_ids) for e in examples]
    if text_tokens is None:
        raise UserError("a reasoning offset needs evaluation text to place before the prompts")
    starts = text_starts(text_tokens, offset, len(examples), seed, bos_id)
    return [[bos_id] + [int(t) for t in text_tokens[s:s + offset]] + list(sep) + list(e.prompt_ids)
            for s, e in zip(starts, examples)]


SIZE_FLAGS = {"lookup": "--lookup-pairs", "permutation": "--permutation-items or --permutation-demos"}


def check_fits(key: str, contexts: Sequence[Sequence[int]], examples: Sequence[tasks.Example], seq_len: int | None,
               offset: int, task: str = "") -> None:
    """The model reads the context and all answer ids but the last; all must fit in seq_len
    (positions it was never trained at would make any score meaningless)."""
    if seq_len is None:
        return
    need = max(len(c) + len(e.answer_ids) - 1 for c, e in zip(contexts, examples))
    if need > seq_len:
        size = f" ({SIZE_FLAGS[task]})" if task in SIZE_FLAGS else ""
        raise UserError(f"{key}: bos, {offset} tokens of text before the prompt, the prompt and its answer need "
                        f"{need} positions, but the model's context is {seq_len}; lower --reasoning-offset or the "
                        f"prompt size{size}")


def _by_shape(contexts, examples, batch_size: int):
    """Batches of example indices whose contexts and answers have equal lengths."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (c, e) in enumerate(zip(contexts, examples)):
        groups.setdefault((len(c), len(e.answer_ids)), []).append(i)
    for (clen, alen), idx in groups.items():
        for lo in range(0, len(idx), batch_size):
            yield clen, alen, idx[lo:lo + batch_size]


def generate_answers(model, variables, contexts, examples, seed: int, batch_size: int) -> list[list[int]]:
    """Greedy continuations as long as each answer; example i uses evaluation context row i."""
    outputs: list[list[int]] = [[] for _ in examples]
    for _, alen, rows in _by_shape(contexts, examples, batch_size):
        prompt = jnp.asarray([contexts[i] for i in rows], jnp.int32)
        ctx = scoring.eval_context(model, seed, np.asarray(rows))
        out = generate(model, variables, prompt, ctx, jax.random.key(seed), max_new=alen)
        for i, row in zip(rows, np.asarray(out)):
            outputs[i] = row.tolist()
    return outputs


@functools.partial(jax.jit, static_argnames=("model",))
def _teacher_forced(model, variables, inputs_BxL, targets_BxL, answer_at, candidates_BxC, ctx):
    """log p(target) at every position, and log p(candidate) at position `answer_at` (where
    the first answer token is predicted), from one backbone pass; the candidates go through
    the family's own target_logprobs (chunked where it has one), never B x V logits."""

    def run(m, inputs, targets, candidates):
        h_BxLxD = m.hidden(inputs, ctx)
        logp_BxL = m.embedding.target_logprobs(h_BxLxD, targets, ctx)
        h_Bx1xD = jax.lax.dynamic_slice_in_dim(h_BxLxD, answer_at, 1, axis=1)
        h_BxCxD = jnp.broadcast_to(h_Bx1xD, (h_BxLxD.shape[0], candidates.shape[1], h_BxLxD.shape[2]))
        return logp_BxL, m.embedding.target_logprobs(h_BxCxD, candidates, ctx)

    return model.apply(variables, inputs_BxL, targets_BxL, candidates_BxC, method=run)


def teacher_force(model, variables, contexts, examples, seed: int,
                  batch_size: int) -> tuple[list[np.ndarray], list[float]]:
    """Per example: the candidates' log-probs at the answer position (ordered as
    tasks.candidate_ids) and the whole answer's log-probability."""
    with_candidates = all(e.candidates for e in examples)
    all_ids = [tasks.candidate_ids(e) if with_candidates else [e.answer_ids[0]] for e in examples]
    width = -(-max(len(c) for c in all_ids) // 8) * 8  # one compiled shape per task, whatever the sampler
    cand_logp: list[np.ndarray] = [np.zeros(0)] * len(examples)
    answer_logp = [0.0] * len(examples)
    for clen, alen, rows in _by_shape(contexts, examples, batch_size):
        seqs_BxS = np.asarray([list(contexts[i]) + list(examples[i].answer_ids) for i in rows], np.int32)
        ids = [all_ids[i] for i in rows]
        cands_BxC = np.asarray([c + [c[0]] * (width - len(c)) for c in ids], np.int32)  # pads are ignored
        logp_BxL, cand_BxC = _teacher_forced(model, variables, jnp.asarray(seqs_BxS[:, :-1]),
                                             jnp.asarray(seqs_BxS[:, 1:]), clen - 1, jnp.asarray(cands_BxC),
                                             scoring.eval_context(model, seed, np.asarray(rows)))
        logp_BxL, cand_BxC = np.asarray(logp_BxL, np.float64), np.asarray(cand_BxC, np.float64)
        for j, i in enumerate(rows):
            cand_logp[i] = cand_BxC[j, :len(ids[j])]
            answer_logp[i] = float(logp_BxL[j, clen - 1:clen - 1 + alen].sum())
    return cand_logp, answer_logp


def score(generated, cand_logp, answer_logp, examples) -> dict[str, float]:
    """One task and sampler's detail entry from the model's (or any predictor's) outputs."""
    out = {"exact_match": tasks.score_exact_match(generated, examples)}
    if all(e.candidates for e in examples):
        out.update(tasks.score_ranks(cand_logp, examples))
    out["answer_logprob"] = float(np.mean(answer_logp))
    return out


def check_settings(tokenizer, *, seq_len: int | None, task_names=DEFAULT_TASKS, task_params: dict | None = None,
                   lookup_pairs: Sequence[int] = DEFAULT_LOOKUP_PAIRS, offset: int = 0,
                   text_tokens: np.ndarray | None = None, induction_length: int = 32) -> None:
    """Raise the UserError `evaluate` would, from one example per task, before any model work
    (the suite calls it first, so a prompt that does not fit never waits for other suites)."""
    if induction_length:
        induction.check_fits(induction_length, seq_len)
    sep = tasks.Format.from_tokenizer(tokenizer).sep
    for key, (task, params) in task_specs(task_names, task_params, lookup_pairs).items():
        exs = tasks.make_examples(task, 1, 0, tokenizer, **params)
        ctxs = place_prompts(exs, tokenizer.bos_id, sep, offset=offset, text_tokens=text_tokens)
        check_fits(key, ctxs, exs, seq_len, offset, task)


def evaluate(model, variables, tokenizer, train_tokens, *, examples: int = 1000, seed: int = 0,
             task_names=DEFAULT_TASKS, batch_size: int = 100, task_params: dict | None = None,
             lookup_pairs: Sequence[int] = DEFAULT_LOOKUP_PAIRS, offset: int = 0,
             text_tokens: np.ndarray | None = None, seq_len: int | None = None,
             induction_length: int = 32) -> dict:
    """The results described in the module docstring. `text_tokens` (the evaluation text) is
    needed when offset > 0; `seq_len` (the model's context) turns prompts that do not fit into
    a UserError before any model work; induction_length 0 skips the induction score."""
    counts = np.bincount(np.asarray(train_tokens[: 5_000_000]), minlength=tokenizer.vocab_size)
    fmt = tasks.Format.from_tokenizer(tokenizer)
    sep = fmt.sep
    specs = task_specs(task_names, task_params, lookup_pairs)
    if induction_length:
        induction.check_fits(induction_length, seq_len)
    work = {}
    for key, (task, params) in specs.items():
        for sampler in SAMPLERS:
            exs = tasks.make_examples(task, examples, seed, tokenizer, sampler=sampler,
                                      counts=counts if sampler == "frequency" else None, **params)
            ctxs = place_prompts(exs, tokenizer.bos_id, sep, offset=offset, text_tokens=text_tokens, seed=seed)
            check_fits(key, ctxs, exs, seq_len, offset, task)
            work[key, sampler] = exs, ctxs
    result: dict = {key: {} for key in specs}
    result.update(detail={key: {} for key in specs}, calibration={key: {} for key in specs})
    for (key, sampler), (exs, ctxs) in work.items():
        gen = generate_answers(model, variables, ctxs, exs, seed, batch_size)
        cand_logp, answer_logp = teacher_force(model, variables, ctxs, exs, seed, batch_size)
        result["detail"][key][sampler] = score(gen, cand_logp, answer_logp, exs)
        result[key][sampler] = result["detail"][key][sampler]["exact_match"]
        result["calibration"][key][sampler] = calibration.evaluate(ctxs, exs, tokenizer.vocab_size)
    if induction_length:
        result["induction"] = induction.evaluate(model, variables, tokenizer, length=induction_length,
                                                 num=examples, seed=seed, seq_len=seq_len)
    result["tasks"] = {key: {"task": task, "params": params} for key, (task, params) in specs.items()}
    result["offset"] = int(offset)
    result["examples"] = int(examples)
    result["arrow"] = tokenizer.decode(list(fmt.arrow))  # "->", or ":" where a vocabulary lacks ">"
    return result
