"""Substitution-cipher evaluation (Huang et al. 2023, section 5): plain vs ciphered loss, and
a deciphering probe on the frozen model whose majority-vote keys are scored per window.

Character tokenizers use the paper's cipher over the 26 lowercase letters; other
tokenizers (subwords) a permutation of every non-special token. The probe is a 2-layer MLP
on the final-layer activations, reading each ciphered position and naming the plain
current token through its own learned (non-random) output embedding; it trains on the
training split with a fresh cipher per sequence, then keys are voted inside windows of
the validation sequences and compared with frequency analysis of the same windows.
"""
from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lexi.eval import cipher as ciph
from lexi.eval import scoring


class Probe(nn.Module):
    vocab_size: int
    hidden: int
    out_dim: int

    @nn.compact
    def __call__(self, h_BxLxD):
        z = nn.gelu(nn.Dense(self.hidden, name="fc1")(h_BxLxD))
        z = nn.Dense(self.out_dim, name="fc2")(z)
        table = self.param("output_embedding", nn.initializers.normal(1.0 / np.sqrt(self.out_dim)),
                           (self.vocab_size, self.out_dim))
        return z @ table.T


def alphabet_for(tokenizer) -> tuple[np.ndarray, bool]:
    """(alphabet ids, letter mode): the 26 letters when each is one token, else every
    non-special id."""
    ids = [tokenizer.encode(c) for c in ciph.ALPHABET]
    if all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 26:
        return np.asarray([i[0] for i in ids]), True
    special = set(tokenizer.special_ids)
    return np.asarray([i for i in range(tokenizer.vocab_size) if i not in special]), False


def random_cipher(rng: np.random.Generator, tokenizer, alphabet: np.ndarray, letter_mode: bool) -> np.ndarray:
    """int[V] plain id -> cipher id."""
    if letter_mode:
        return ciph.letter_permutation_ids(ciph.letter_key(rng), tokenizer.vocab_size, alphabet)
    return ciph.token_permutation(tokenizer.vocab_size, tokenizer.special_ids, rng)


def _encipher(windows: dict, perms_NxV: np.ndarray) -> dict:
    out = dict(windows)
    for k in ("inputs", "targets"):
        out[k] = np.take_along_axis(perms_NxV, windows[k], axis=1).astype(np.int32)
    return out


def _sample_windows(tokens: np.ndarray, seq_len: int, n: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, len(tokens) - seq_len - 1, size=n)
    return np.stack([np.asarray(tokens[s:s + seq_len]) for s in starts]).astype(np.int32)


def train_probe(model, variables, tokenizer, train_tokens, seq_len: int, *, steps: int, batch_size: int = 16,
                lr: float = 1e-3, seed: int = 0, log=None):
    alphabet, letter_mode = alphabet_for(tokenizer)
    d = model.backbone.d_model
    probe = Probe(tokenizer.vocab_size, hidden=4 * d, out_dim=d)
    pparams = probe.init(jax.random.key(seed), jnp.zeros((1, 1, d)))
    tx = optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10 + 1), steps, lr * 0.1))
    opt = tx.init(pparams)
    special = jnp.asarray(list(tokenizer.special_ids), jnp.int32)

    @jax.jit
    def step(pparams, opt, feats, plain):
        def loss_fn(p):
            logits = probe.apply(p, feats)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, plain)
            mask = ~jnp.isin(plain, special)
            return jnp.sum(nll * mask) / jnp.maximum(mask.sum(), 1)
        loss, g = jax.value_and_grad(loss_fn)(pparams)
        upd, opt = tx.update(g, opt, pparams)
        return optax.apply_updates(pparams, upd), opt, loss

    rng = np.random.default_rng(seed)
    losses = []
    for i in range(steps):
        plain = _sample_windows(train_tokens, seq_len, batch_size, rng)
        perms = np.stack([random_cipher(rng, tokenizer, alphabet, letter_mode) for _ in range(batch_size)])
        cipher_in = np.take_along_axis(perms, plain, axis=1)
        ctx = scoring.eval_context(model, seed + 1 + i, np.arange(batch_size))
        feats = jax.lax.stop_gradient(scoring.hidden_states(model, variables, cipher_in, ctx))
        pparams, opt, loss = step(pparams, opt, feats, jnp.asarray(plain))
        losses.append(float(loss)) if (i % 50 == 0 or i == steps - 1) else None
        if log and i % 200 == 0:
            log(f"probe step {i}/{steps}: loss {float(loss):.3f}")
    return probe, pparams, losses


def probe_predictions(model, variables, probe, probe_params, inputs_NxL: np.ndarray, *, seed: int = 0,
                      batch_size: int = 16) -> np.ndarray:
    """The probe's plain-token guess at every position of `inputs_NxL` (row i read with the
    evaluation context of row i, i.e. its own random embeddings for a lexinvariant model)."""
    preds = []
    for lo in range(0, len(inputs_NxL), batch_size):
        rows = np.arange(lo, min(lo + batch_size, len(inputs_NxL)))
        feats = scoring.hidden_states(model, variables, inputs_NxL[rows], scoring.eval_context(model, seed, rows))
        preds.append(np.asarray(jnp.argmax(probe.apply(probe_params, feats), axis=-1)))
    return np.concatenate(preds)


def evaluate(model, variables, tokenizer, train_tokens, windows: dict, *, probe_steps: int = 1000,
             window: int = 100, stride: int = 25, seed: int = 0, batch_size: int = 16, log=None) -> dict:
    alphabet, letter_mode = alphabet_for(tokenizer)
    rng = np.random.default_rng(seed + 12345)
    n, seq_len = windows["inputs"].shape
    perms = np.stack([random_cipher(rng, tokenizer, alphabet, letter_mode) for _ in range(n)])
    ciphered = _encipher(windows, perms)
    mask = windows["loss_mask"]
    plain_nll = scoring.token_nll(model, variables, windows, seed=seed, batch_size=batch_size)
    cipher_nll = scoring.token_nll(model, variables, ciphered, seed=seed, batch_size=batch_size)
    result = {
        "plain_loss": float((plain_nll * mask).sum() / mask.sum()),
        "cipher_loss": float((cipher_nll * mask).sum() / mask.sum()),
        "cipher_mode": "letters" if letter_mode else "token_permutation",
    }
    result["cipher_plain_ratio"] = result["cipher_loss"] / result["plain_loss"]

    probe, pparams, probe_losses = train_probe(model, variables, tokenizer, train_tokens, seq_len,
                                               steps=probe_steps, batch_size=batch_size, seed=seed, log=log)
    pred = probe_predictions(model, variables, probe, pparams, ciphered["inputs"], seed=seed, batch_size=batch_size)
    truths = [ciph.cipher_to_plain(p, alphabet) for p in perms]
    window = min(window, seq_len)
    starts, prec = ciph.windowed_key_precision(ciphered["inputs"], pred, truths, alphabet, window, stride)
    ref = ciph.letter_frequencies(np.asarray(train_tokens[: 2_000_000]), alphabet)
    _, base = ciph.windowed_frequency_precision(ciphered["inputs"], ref, truths, alphabet, window, stride)
    plain_in = windows["inputs"]
    probe_acc = float(np.mean(pred[np.isin(plain_in, alphabet)] == plain_in[np.isin(plain_in, alphabet)]))
    result.update({
        "window": int(window), "window_starts": starts.tolist(),
        "key_precision_by_window": prec.tolist(), "key_precision_last_window": float(prec[-1]),
        "frequency_baseline_by_window": base.tolist(), "frequency_baseline_precision": float(base[-1]),
        "probe_accuracy": probe_acc, "probe_steps": int(probe_steps), "probe_loss_curve": probe_losses,
    })
    # The paper's full-key experiment: one fixed key for every sequence, voted from their last windows.
    shared = random_cipher(np.random.default_rng(seed + 777), tokenizer, alphabet, letter_mode)
    shared_in = np.take_along_axis(np.broadcast_to(shared, (n, len(shared))), windows["inputs"], axis=1)
    shared_pred = probe_predictions(model, variables, probe, pparams, shared_in, seed=seed, batch_size=batch_size)
    full = ciph.vote_full_key(shared_in, shared_pred, ciph.cipher_to_plain(shared, alphabet), alphabet, window)
    result["full_key_precision"] = float(full.precision)
    result["full_key_recovered"] = int(full.recovered)
    return result
