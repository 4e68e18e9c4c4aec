"""Substitution-cipher evaluation (Huang et al. 2023, section 5): plain vs ciphered loss, and
a deciphering probe on the frozen model whose keys are scored per window.

Character tokenizers use the paper's cipher over the 26 lowercase letters; other
tokenizers (subwords) a permutation of every non-special token. The probe is a 2-layer MLP
that reads one position of one layer's residual stream and names the plain current token
through its own learned (non-random) output embedding. There is one probe per layer (the
embedding output, each block's output, the final-normed h): for a lexinvariant model the
final layer is written for the readout and is the hardest place to decode token identity.

The probes train on a fixed pool of enciphered training windows (a fresh cipher per
window) whose features the frozen model computes once, so the paper's 10k probe steps cost
only the probe's own arithmetic. Pool windows are built like the validation windows
(`eval_windows`: each starts at a document's bos) and carry the segment ids and positions
that packing gives training batches, so the model reads them as it was trained to. Each
probe keeps its parameters of lowest loss on held-out pool windows, and the reported layer
is the one whose probe has the lowest such loss: chosen without looking at the validation
keys. Keys are decoded inside windows of the validation sequences under every decoding of
`cipher.DECODINGS`, beside frequency analysis of the same windows decoded the same way.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lexi.errors import UserError
from lexi.eval import cipher as ciph
from lexi.eval import scoring
from lexi.eval.cipher_pool import (POOL_BYTES, CipherSet, FeaturePool, alphabet_for, encipher, feature_pool,
                                   model_featurizer, random_cipher, random_ciphers, row_batches)

_CHUNK_STEPS = 100  # probe steps per compiled scan (and per point of the loss curve)
_HELDOUT_TOKENS = 4096  # held-out tokens scored per call



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


# --- training ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _heldout_sums(probe, params_K, feats_KxNxD, plain_N, weight_N):
    def layer(p, x_NxD):
        logits = probe.apply(p, x_NxD)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, plain_N)
        return (nll * weight_N).sum(), ((jnp.argmax(logits, -1) == plain_N) * weight_N).sum()
    return jax.vmap(layer)(params_K, feats_KxNxD)


def heldout_metrics(probe: Probe, params_K, feats_KxHxD: np.ndarray, plain_H: np.ndarray,
                    alphabet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(loss_K, accuracy_K) of each layer's probe on held-out tokens whose plain token is in
    the alphabet (the ones keys are about; all tokens if there are none)."""
    weight_H = np.isin(plain_H, alphabet).astype(np.float32)
    if not weight_H.any():
        weight_H = np.ones_like(weight_H)
    num_layers, h, d = feats_KxHxD.shape
    loss_K, hits_K = np.zeros(num_layers), np.zeros(num_layers)
    for lo in range(0, h, _HELDOUT_TOKENS):
        part = slice(lo, min(lo + _HELDOUT_TOKENS, h))
        pad = _HELDOUT_TOKENS - (part.stop - part.start)  # one compiled shape for every chunk
        x = np.pad(feats_KxHxD[:, part], ((0, 0), (0, pad), (0, 0)))
        y, w = np.pad(plain_H[part], (0, pad)), np.pad(weight_H[part], (0, pad))
        nll, hits = _heldout_sums(probe, params_K, x, y, w)
        loss_K += np.asarray(nll)
        hits_K += np.asarray(hits)
    return loss_K / weight_H.sum(), hits_K / weight_H.sum()


@dataclass(frozen=True)
class ProbeFit:
    """Trained probes, one per layer, each kept at its lowest held-out loss, and the layer
    chosen by that loss."""

    probe: Probe
    params: Any  # stacked over layers
    layer: int
    heldout_loss_K: np.ndarray
    heldout_accuracy_K: np.ndarray
    best_step_K: np.ndarray
    curve: list  # [(step, mean training loss per layer over the last chunk of steps)]

    @property
    def num_layers(self) -> int:
        return int(jax.tree_util.tree_leaves(self.params)[0].shape[0])

    def layer_params(self, k: int):
        return jax.tree_util.tree_map(lambda p: p[k], self.params)


def _take_where(better_K: np.ndarray, new, old):
    """Stacked parameters: layer k from `new` where better_K[k], else from `old`."""
    pick = jnp.asarray(better_K)
    return jax.tree_util.tree_map(lambda n, o: jnp.where(pick.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


def fit_probes(pool: FeaturePool, vocab_size: int, alphabet: np.ndarray, *, steps: int, batch_tokens: int = 256,
               lr: float = 1e-3, seed: int = 0, log=None) -> ProbeFit:
    """One probe per layer k on (pool.train_KxTxD[k], pool.train_plain_T), all in one
    compiled step that draws `batch_tokens` tokens (the same for every layer) from the pool
    on the device. About 20 times per run each layer's held-out loss is measured and the
    layer keeps its best parameters: a fixed pool can be memorised in 10k steps. The
    reported layer has the lowest held-out loss, a choice made on training text, never on
    the validation keys. Features may come from any featurizer or be given directly."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    num_layers, num_tokens, d = pool.train_KxTxD.shape
    if num_tokens == 0 or len(pool.heldout_plain_H) == 0:
        raise ValueError("the probe's pool has no training or no held-out tokens")
    probe = Probe(vocab_size, hidden=4 * d, out_dim=d)
    params = jax.vmap(lambda k: probe.init(k, jnp.zeros((1, d))))(jax.random.split(jax.random.key(seed), num_layers))
    tx = optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10 + 1), steps, lr * 0.1))
    opt = jax.vmap(tx.init)(params)

    def loss_fn(p, x_BxD, y_B):
        return optax.softmax_cross_entropy_with_integer_labels(probe.apply(p, x_BxD), y_B).mean()

    @functools.partial(jax.jit, static_argnums=3)
    def run(params, opt, key, n, feats, plain):
        def one(carry, k):
            params, opt = carry
            idx = jax.random.randint(k, (batch_tokens,), 0, feats.shape[1])
            loss_K, g = jax.vmap(jax.value_and_grad(loss_fn), in_axes=(0, 0, None))(params, feats[:, idx], plain[idx])
            upd, opt = jax.vmap(tx.update)(g, opt, params)
            return (optax.apply_updates(params, upd), opt), loss_K
        (params, opt), loss_NxK = jax.lax.scan(one, (params, opt), jax.random.split(key, n))
        return params, opt, loss_NxK.mean(axis=0)

    feats, plain = jax.device_put(pool.train_KxTxD), jax.device_put(np.asarray(pool.train_plain_T, np.int32))
    heldout = (pool.heldout_KxHxD, pool.heldout_plain_H, alphabet)
    check_every = _CHUNK_STEPS * max(1, steps // (20 * _CHUNK_STEPS))
    best = params
    best_loss, best_acc, best_step = np.full(num_layers, np.inf), np.zeros(num_layers), np.zeros(num_layers, int)
    key, curve, done = jax.random.key(seed + 1), [], 0
    while done < steps:
        n = min(_CHUNK_STEPS, steps - done)
        params, opt, loss_K = run(params, opt, jax.random.fold_in(key, done), n, feats, plain)
        done += n
        curve.append((done, [float(v) for v in loss_K]))
        if done % check_every == 0 or done == steps:
            loss_h, acc_h = heldout_metrics(probe, params, *heldout)
            better = loss_h < best_loss
            best = _take_where(better, params, best)
            best_loss, best_acc = np.where(better, loss_h, best_loss), np.where(better, acc_h, best_acc)
            best_step = np.where(better, done, best_step)
            if log:
                log(f"probe step {done}/{steps}: training loss per layer " + " ".join(f"{v:.3f}" for v in loss_K)
                    + "; held-out " + " ".join(f"{v:.3f}" for v in loss_h))
    return ProbeFit(probe, best, int(np.argmin(best_loss)), best_loss, best_acc, best_step, curve)


# --- decoding ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _layer_outputs(probe, params, feats_BxLxD, alphabet_A):
    """(argmax over the vocabulary [B, L], log-probabilities of the alphabet ids [B, L, A])."""
    logits = probe.apply(params, feats_BxLxD)
    return jnp.argmax(logits, -1), jax.nn.log_softmax(logits)[..., alphabet_A]


@functools.partial(jax.jit, static_argnums=0)
def _layer_argmax(probe, params, feats_BxLxD):
    return jnp.argmax(probe.apply(params, feats_BxLxD), -1)


def predictions(fit: ProbeFit, cipher_set: CipherSet, *, layer: int, batch_size: int = 16) -> np.ndarray:
    """int[N, L]: layer `layer`'s probe's plain-token guess at every position of the set."""
    params = fit.layer_params(layer)
    return np.concatenate([np.asarray(_layer_argmax(fit.probe, params, cipher_set.features(rows)[layer]))
                           for rows in row_batches(len(cipher_set.perms_NxV), batch_size)])


def score_layers(fit: ProbeFit, val: CipherSet, alphabet: np.ndarray, *, window: int, stride: int | None,
                 batch_size: int = 16) -> tuple[np.ndarray, list[dict]]:
    """Every layer's probe on the validation set: (starts_W, per layer {"precision":
    {decoding: precision_W}, "probe_accuracy": plain tokens of the alphabet named right}).
    Sequences are decoded a batch at a time, so only one batch's log-probabilities exist."""
    cipher_NxL, plain_NxL = val.ciphered["inputs"], np.asarray(val.windows["inputs"])
    truths = val.true_inverses(alphabet)
    starts = ciph.window_starts(cipher_NxL.shape[1], window, stride)
    scores = [{d: [] for d in ciph.DECODINGS} for _ in range(fit.num_layers)]
    hits, letters = np.zeros(fit.num_layers), 0
    alphabet_A = jnp.asarray(alphabet, jnp.int32)
    for rows in row_batches(len(cipher_NxL), batch_size):
        f_KxBxLxD = val.features(rows)
        is_letter = np.isin(plain_NxL[rows], alphabet)
        letters += int(is_letter.sum())
        for k in range(fit.num_layers):
            pred, logp = (np.asarray(a) for a in _layer_outputs(fit.probe, fit.layer_params(k), f_KxBxLxD[k],
                                                                  alphabet_A))
            hits[k] += np.count_nonzero(pred[is_letter] == plain_NxL[rows][is_letter])
            for i, r in enumerate(rows):
                s = ciph.window_key_scores(cipher_NxL[r], pred[i], logp[i], truths[r], alphabet, starts, window)
                for d in ciph.DECODINGS:
                    scores[k][d].append(s[d])
    return starts, [{"precision": {d: ciph.mean_precision(scores[k][d]) for d in ciph.DECODINGS},
                     "probe_accuracy": float(hits[k] / max(letters, 1))} for k in range(fit.num_layers)]


def layer_name(k: int, num_layers: int) -> str:
    """Stream k of `residual_streams`: the embedding output, block k's output, the final h."""
    if k == num_layers - 1:
        return "final norm"
    return "embedding" if k == 0 else f"block {k}"


def _curves(precision: dict) -> dict:
    return {d: {"by_window": p.tolist(), "last_window": float(p[-1])} for d, p in precision.items()}


def key_recovery(pool: CipherSet, val: CipherSet, *, vocab_size: int, special_ids: Iterable[int],
                 alphabet: np.ndarray, reference: dict[int, float], steps: int, window: int, stride: int | None,
                 batch_tokens: int = 256, positions_per_window: int | None = None, seed: int = 0,
                 batch_size: int = 16, log=None) -> tuple[dict, ProbeFit]:
    """Probes on the pool's features, keys decoded on the validation set, the frequency
    baseline on the same windows: the "cipher" results' key-recovery entries, and the fit.
    The features come from the sets' featurizers, so given features (tests' oracles) take
    exactly the path a model's do."""
    t0 = time.perf_counter()
    n_pool = len(pool.perms_NxV)
    feats = feature_pool(pool, special_ids, heldout_windows=max(1, n_pool // 8),
                         positions_per_window=positions_per_window, seed=seed, batch_size=batch_size)
    t1 = time.perf_counter()
    fit = fit_probes(feats, vocab_size, alphabet, steps=steps, batch_tokens=batch_tokens, seed=seed, log=log)
    del feats
    t2 = time.perf_counter()
    starts, layers = score_layers(fit, val, alphabet, window=window, stride=stride, batch_size=batch_size)
    _, base = ciph.windowed_frequency_precisions(val.ciphered["inputs"], reference, val.true_inverses(alphabet),
                                                 alphabet, window, stride)
    chosen = layers[fit.layer]
    by_layer = [{"layer": k, "name": layer_name(k, fit.num_layers), "heldout_loss": float(fit.heldout_loss_K[k]),
                 "heldout_accuracy": float(fit.heldout_accuracy_K[k]), "best_step": int(fit.best_step_K[k]),
                 "probe_accuracy": r["probe_accuracy"],
                 "key_precision": _curves(r["precision"])} for k, r in enumerate(layers)]
    result = {
        "window": int(window), "window_starts": starts.tolist(),
        "probe_layer": fit.layer, "probe_layer_name": layer_name(fit.layer, fit.num_layers),
        "key_precision": _curves(chosen["precision"]), "frequency_baseline": _curves(base), "by_layer": by_layer,
        # the vote's figures under the names reports and notebooks have always read
        "key_precision_by_window": chosen["precision"]["vote"].tolist(),
        "key_precision_last_window": float(chosen["precision"]["vote"][-1]),
        "frequency_baseline_by_window": base["vote"].tolist(),
        "frequency_baseline_precision": float(base["vote"][-1]),
        "probe_accuracy": chosen["probe_accuracy"], "probe_steps": int(steps), "probe_pool": n_pool,
        "probe_loss_curve": [loss[fit.layer] for _, loss in fit.curve],
        "probe_seconds": {"features": t1 - t0, "training": t2 - t1, "decoding": time.perf_counter() - t2},
    }
    return result, fit


def check_settings(*, probe_steps: int, probe_pool: int) -> None:
    """The probe settings a user chooses, checked before any evaluation runs."""
    if probe_steps < 1:
        raise UserError(f"--probe-steps must be at least 1, got {probe_steps}")
    if probe_pool < 2:
        raise UserError(f"--probe-pool must be at least 2 windows (the last 1/8, at least one, is held out to "
                        f"choose the layer), got {probe_pool}")


def _positions_per_window(model, pool_size: int, seq_len: int) -> int | None:
    """How many positions per pool window fit in POOL_BYTES (None: all of them)."""
    per_position = 4 * (model.backbone.num_layers + 1) * model.backbone.d_model
    keep = max(1, POOL_BYTES // (per_position * pool_size))
    return None if keep >= seq_len else int(keep)


def evaluate(model, variables, tokenizer, train_tokens, windows: dict, *, probe_steps: int = 1000,
             probe_pool: int = 512, window: int = 100, stride: int = 25, seed: int = 0, batch_size: int = 16,
             probe_batch_tokens: int = 256, log=None) -> dict:
    from lexi.data.pipeline import eval_windows

    check_settings(probe_steps=probe_steps, probe_pool=probe_pool)
    alphabet, letter_mode = alphabet_for(tokenizer)
    rng = np.random.default_rng(seed + 12345)
    n, seq_len = windows["inputs"].shape
    perms = random_ciphers(rng, n, tokenizer, alphabet, letter_mode)
    ciphered = encipher(windows, perms)
    mask = windows["loss_mask"]
    plain_nll = scoring.token_nll(model, variables, windows, seed=seed, batch_size=batch_size)
    cipher_nll = scoring.token_nll(model, variables, ciphered, seed=seed, batch_size=batch_size)
    result = {
        "plain_loss": float((plain_nll * mask).sum() / mask.sum()),
        "cipher_loss": float((cipher_nll * mask).sum() / mask.sum()),
        "cipher_mode": "letters" if letter_mode else "token_permutation",
    }
    result["cipher_plain_ratio"] = result["cipher_loss"] / result["plain_loss"]

    pool_windows = {k: np.asarray(v) for k, v in eval_windows(train_tokens, seq_len, probe_pool, tokenizer.bos_id,
                                                              start_at_document=True, pad_id=tokenizer.pad_id).items()}
    pool_perms = random_ciphers(np.random.default_rng(seed + 54321), probe_pool, tokenizer, alphabet, letter_mode)
    pool = CipherSet(pool_windows, pool_perms, model_featurizer(model, variables, seed + 1))
    val_featurize = model_featurizer(model, variables, seed)
    val = CipherSet(windows, perms, val_featurize)
    positions = _positions_per_window(model, probe_pool, seq_len)
    if positions is not None and log:
        log(f"probe pool: {positions} random positions per window (of {seq_len}) fit in {POOL_BYTES >> 20} MiB")
    reference = ciph.letter_frequencies(np.asarray(train_tokens[: 2_000_000]), alphabet)
    recovered, fit = key_recovery(pool, val, vocab_size=tokenizer.vocab_size, special_ids=tokenizer.special_ids,
                                  alphabet=alphabet, reference=reference, steps=probe_steps,
                                  window=min(window, seq_len), stride=stride, batch_tokens=probe_batch_tokens,
                                  positions_per_window=positions, seed=seed, batch_size=batch_size, log=log)
    result.update(recovered)
    # The paper's full-key experiment: one fixed key for every sequence, voted from their last windows.
    shared = random_cipher(np.random.default_rng(seed + 777), tokenizer, alphabet, letter_mode)
    shared_set = CipherSet(windows, np.broadcast_to(shared, (n, len(shared))), val_featurize)
    shared_pred = predictions(fit, shared_set, layer=fit.layer, batch_size=batch_size)
    full = ciph.vote_full_key(shared_set.ciphered["inputs"], shared_pred, ciph.cipher_to_plain(shared, alphabet),
                              alphabet, min(window, seq_len))
    result["full_key_precision"] = float(full.precision)
    result["full_key_recovered"] = int(full.recovered)
    return result
