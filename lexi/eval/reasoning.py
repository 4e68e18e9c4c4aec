"""In-context reasoning (Huang et al. 2023, tables 1-2): LookUp and Permutation, symbols drawn
uniformly from the vocabulary or by corpus frequency, scored by exact match of greedily
generated tokens. Tasks come from the registry in tasks.py, so a new task is one function."""
from __future__ import annotations

import numpy as np

from lexi.eval import scoring, tasks
from lexi.generate import generate

DEFAULT_TASKS = ("lookup", "permutation")
SAMPLERS = ("uniform", "frequency")


def _run_examples(model, variables, tokenizer, examples, seed: int, batch_size: int) -> list[list[int]]:
    import jax
    import jax.numpy as jnp

    outputs: list[list[int]] = [None] * len(examples)  # type: ignore[list-item]
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, ex in enumerate(examples):
        by_shape.setdefault((len(ex.prompt_ids), len(ex.answer_ids)), []).append(i)
    for (plen, alen), idx in by_shape.items():
        for lo in range(0, len(idx), batch_size):
            rows = idx[lo:lo + batch_size]
            prompt = np.asarray([[tokenizer.bos_id] + list(examples[i].prompt_ids) for i in rows], np.int32)
            ctx = scoring.eval_context(model, seed, np.asarray(rows))
            out = generate(model, variables, jnp.asarray(prompt), ctx, jax.random.key(seed), max_new=alen)
            for i, row in zip(rows, np.asarray(out)):
                outputs[i] = row.tolist()
    return outputs


def evaluate(model, variables, tokenizer, train_tokens, *, examples: int = 1000, seed: int = 0,
             task_names=DEFAULT_TASKS, batch_size: int = 100, task_params: dict | None = None) -> dict:
    counts = np.bincount(np.asarray(train_tokens[: 5_000_000]), minlength=tokenizer.vocab_size)
    result: dict = {}
    for name in task_names:
        result[name] = {}
        for sampler in SAMPLERS:
            exs = tasks.make_examples(name, examples, seed, tokenizer, sampler=sampler,
                                      counts=counts if sampler == "frequency" else None,
                                      **(task_params or {}).get(name, {}))
            gen = _run_examples(model, variables, tokenizer, exs, seed, batch_size)
            result[name][sampler] = tasks.score_exact_match(gen, exs)
    result["examples"] = int(examples)
    return result
