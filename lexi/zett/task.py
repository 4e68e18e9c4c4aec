"""Training a ZeTT hypernetwork for a trained lexi language model, in the shared loop.

The base run (`config.base_workdir`, a standard LM: trainable embedding, tied or untied) is
loaded once and frozen. Each step gets a freshly sampled tokenizer (lexi/zett/sampler.py,
made on the host ahead of the device by the loop's prefetcher): the text rows encoded with
it and its vocabulary decomposed into base pieces, padded to a fixed size so the step
compiles once. The hypernetwork predicts the embedding matrices; the loss is the frozen
base model's next-token loss with those matrices swapped in and read out as the base reads
out (its logit scale: lexi/embeddings/predicted.py), plus `aux_weight` x the MSE
of tokens that are a single base piece toward their base rows. Only the hypernetwork's
parameters are in the train state and the checkpoints; the base stays in its own run
directory, and resuming checks that it has not changed.

Validation loss = bits per UTF-8 byte of the validation documents under `eval_batches`
tokenizers sampled from them (fixed across steps), so it is comparable between runs; beside
it, `val_bpb_byte` under the fixed `byte` target (lexi/zett/validation.py). A share of the
training steps draws byte-like vocabularies (config.zett.byte_like_*, lexi/zett/byte_like.py).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from lexi import embeddings, sharding
from lexi.embeddings.predicted import from_base, tables
from lexi.embeddings.trainable import readout_scale
from lexi.errors import UserError
from lexi.model.config import BackboneConfig
from lexi.model.lm import LanguageModel
from lexi.train import flops as flops_lib
from lexi.train import optimizer as opt_lib
from lexi.rundir import check_resume_compatible
from lexi.train.setup_run import Run, state_layout
from lexi.train.state import TrainState
from lexi.train.step import apply_gradients, sequence_nll
from lexi.train.task import EvalFn, StepFn, Task
from lexi.zett.hypernet import Hypernet, HypernetConfig
from lexi.zett.validation import SAMPLED, validation_metrics

BASE_RECORD = "zett_base.json"  # which base run (and checkpoint step) the hypernetwork was trained for
TEXT_KEYS = ("inputs", "targets", "segment_ids", "positions", "loss_mask")


def padded_vocab(size: int) -> int:
    return -(-int(size) // 128) * 128


@dataclasses.dataclass
class Base:
    """A frozen base LM: its backbone settings, tokenizer, parameters (on the host's devices) and
    readout (`embedding`: the predicted family's config, from the base's own embedding config)."""

    workdir: Path
    cfg: Any
    backbone: BackboneConfig
    tokenizer: Any
    params: Any
    step: int
    tied: bool
    embedding: dict

    @property
    def d_model(self) -> int:
        return self.backbone.d_model

    def predicted(self, vocab_size: int):
        """The embedding that runs this base with tables handed in, read out as the base reads out."""
        return embeddings.build(self.embedding, vocab_size, self.d_model)


def load_base(workdir: str | Path) -> Base:
    from lexi.inference import load_for_inference

    if not str(workdir):
        raise UserError("config.base_workdir is empty: set it to the run directory of the base model, "
                        "e.g. --config.base_workdir=runs/base")
    loaded = load_for_inference(Path(workdir))
    emb = dict(loaded.cfg.embedding)
    if emb.get("kind", "trainable") != "trainable":
        raise UserError(f"{workdir} is a {emb.get('kind')!r} model; ZeTT transfers standard language models "
                        "(config.embedding.kind 'trainable'), whose embedding matrices it can predict")
    return Base(Path(workdir), loaded.cfg, loaded.model.backbone, loaded.tokenizer, loaded.params,
                loaded.step, bool(emb.get("tied", True)), from_base(emb))


def frozen_arrays(base: Base) -> dict:
    """What the hypernetwork and the frozen LM read: backbone weights and the base matrices."""
    e = base.params["embedding"]
    out = {"body": base.params["body"], "base_in": e["table"]}
    if not base.tied:
        out["base_out"] = e["head"]
    return out


def check_readout(cfg, base: Base) -> None:
    """A hypernetwork trained for one logit scale is refused for a base that now reads out with
    another. Runs from before the scale was recorded (config.embedding not 'predicted') take the
    base's: ZeTT always meant the base's readout, whatever those runs computed."""
    saved = dict(cfg.get("embedding") or {})
    if saved.get("kind") != "predicted":
        return
    now = readout_scale(base.embedding["logit_scale"], base.d_model)
    was = readout_scale(saved.get("logit_scale", base.embedding["logit_scale"]), base.d_model)
    if not math.isclose(was, now, rel_tol=1e-6):
        raise UserError(f"this ZeTT run was trained for logits scaled by {was:g}, but its base {base.workdir} now "
                        f"reads out with {now:g} (config.embedding.logit_scale); point config.base_workdir at "
                        "the base it was trained for")


def hypernet_config(cfg, base: Base) -> HypernetConfig:
    h = dict(cfg.hypernet)
    return HypernetConfig(d_model=base.d_model, tied=base.tied, dtype=base.backbone.dtype, **h)


@dataclasses.dataclass(frozen=True)
class ZettRun:
    """A ZeTT run: the loop's `Run` (the hypernetwork's optimizer and state layout; its model is
    the frozen base reading predicted tables, its config the run's with the base's backbone and
    readout recorded) and what only ZeTT needs besides."""

    run: Run
    base: Base
    hypernet: Hypernet
    frozen: Any  # device arrays of `frozen_arrays(base)`, laid out on the run's mesh
    vocab_size: int  # padded
    init_args: tuple  # what `hypernet.init` takes after the key


def make_zett_steps(lm: LanguageModel, hypernet: Hypernet, tx, *, aux_weight: float, identity_steps: int = 0,
                    schedule=None):
    """Pure (train_step, eval_step). Batches: `text` (the LM keys, [B, L]) and `vocab`
    (pieces [V, P], lengths [V], mask [V], special [V]) of the step's tokenizer."""

    def predict(hparams, frozen, vocab):
        return hypernet.apply({"params": hparams}, vocab["pieces"], vocab["special"], frozen["base_in"],
                              frozen.get("base_out"))

    def lm_nll(rows_in, rows_out, frozen, text, vocab):
        return sequence_nll(lm, {"params": {"body": frozen["body"]}}, text, tables(rows_in, rows_out, vocab["mask"]))

    def aux_mse(rows_in, rows_out, frozen, vocab):
        """Mean squared error toward the base rows, over tokens that are one base piece."""
        single = (vocab["lengths"] == 1) & vocab["mask"] & ~vocab["special"]
        first = jnp.maximum(vocab["pieces"][:, 0], 0)
        err = jnp.mean(jnp.square(rows_in - jnp.take(frozen["base_in"], first, axis=0)), axis=-1)
        if "base_out" in frozen:
            err = err + jnp.mean(jnp.square(rows_out - jnp.take(frozen["base_out"], first, axis=0)), axis=-1)
        return jnp.sum(err * single) / jnp.maximum(jnp.sum(single), 1)

    def train_step(state: TrainState, frozen, text, vocab, rng):
        lm_weight = (state.step >= identity_steps).astype(jnp.float32)

        def f(hparams):
            rows_in, rows_out = predict(hparams, frozen, vocab)
            nll, count = lm_nll(rows_in, rows_out, frozen, text, vocab)
            lm_loss = nll / jnp.maximum(count, 1.0)
            aux = aux_mse(rows_in, rows_out, frozen, vocab)
            return lm_weight * lm_loss + aux_weight * aux, (lm_loss, aux, count)

        (loss, (lm_loss, aux, count)), grads = jax.value_and_grad(f, has_aux=True)(state.params)
        new_state, grad_norm, finite = apply_gradients(state, grads, loss, tx)
        metrics = {"loss": loss, "lm_loss": lm_loss, "aux_mse": aux, "grad_norm": grad_norm, "tokens": count,
                   "finite": finite}
        if schedule is not None:
            metrics["lr"] = schedule(state.step)
        return new_state, metrics

    def eval_step(hparams, frozen, text, vocab, num_bytes_B):
        rows_in, rows_out = predict(hparams, frozen, vocab)
        nll, count = lm_nll(rows_in, rows_out, frozen, text, vocab)
        return {"nll": nll, "count": count, "bytes": jnp.sum(num_bytes_B)}

    return train_step, eval_step


def assemble(cfg, workdir: Optional[Path] = None) -> ZettRun:
    """Hypernetwork, frozen base on this mesh, optimizer and shardings; writes nothing."""
    if cfg.train.grad_accum != 1:
        raise UserError("ZeTT training takes config.train.grad_accum = 1 (the hypernetwork runs once per step)")
    z, h = cfg.zett, cfg.hypernet
    if not 260 < z.vocab_size:
        raise UserError(f"config.zett.vocab_size ({z.vocab_size}) must exceed 260: sampled tokenizers hold the "
                        "256 bytes and 4 special tokens besides their pieces")
    if h.pieces < 1 or h.num_layers < 1:
        raise UserError(f"config.hypernet.pieces ({h.pieces}) and num_layers ({h.num_layers}) must be positive")
    base = load_base(cfg.base_workdir)
    check_readout(cfg, base)
    # the backbone and readout are the base's: recorded in this run's config.json for transfer and reports
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    cfg.model = ml_collections.ConfigDict(dataclasses.asdict(base.backbone))
    cfg.embedding = ml_collections.ConfigDict(base.embedding)
    mesh = sharding.make_mesh(dict(cfg.mesh.shape))
    rules = sharding.rules_from_config(cfg.mesh)
    hcfg = hypernet_config(cfg, base)
    hypernet = Hypernet(hcfg)
    v = padded_vocab(cfg.zett.vocab_size)
    lm = LanguageModel(base.backbone, base.predicted(v))
    tx, schedule = opt_lib.make_optimizer(cfg.train), opt_lib.make_schedule(cfg.train)
    frozen_host = frozen_arrays(base)
    dummy = (jnp.zeros((v, hcfg.pieces), jnp.int32), jnp.zeros((v,), bool), frozen_host["base_in"],
             frozen_host.get("base_out"))
    boxed = jax.eval_shape(lambda k: hypernet.init(k, *dummy), jax.random.key(0))["params"]
    state_sh, abstract = state_layout(boxed, {}, tx, mesh, rules)
    frozen = jax.tree_util.tree_map(
        lambda a: jax.device_put(a, NamedSharding(mesh, a.sharding.spec)), frozen_host)
    run = Run(cfg, mesh, lm, tx, schedule, state_sh, abstract, base.tokenizer, workdir)
    return ZettRun(run, base, hypernet, frozen, v, dummy)


def initial_state(zr: ZettRun, seed: int) -> TrainState:
    """The untrained hypernetwork (a residual one reproduces the base) and fresh optimizer slots."""
    run = zr.run

    def make(key):
        params = nn.meta.unbox(zr.hypernet.init(key, *zr.init_args)["params"])
        return TrainState(step=jnp.int32(0), params=params, opt_state=run.tx.init(params))

    return jax.jit(make, out_shardings=run.state_shardings)(jax.random.key(seed))


class ZettTask(Task):
    """Training a hypernetwork for a frozen base. The loop sees the `Run`; the rest of the
    ZettRun (base, hypernetwork, frozen arrays) stays here, set by `build_run`."""

    zett: Optional[ZettRun] = None

    def check_resume(self, cfg, workdir: Path) -> None:
        check_resume_compatible(cfg, workdir, identity=("hypernet",))  # the base: checked in build_run

    def build_run(self, cfg, workdir: Path) -> Run:
        self.zett = zr = assemble(cfg, workdir)
        record = workdir / BASE_RECORD
        now = {"workdir": str(zr.base.workdir.resolve()), "step": zr.base.step}
        checkpoints = workdir / "checkpoints"
        if record.exists() and checkpoints.exists() and any(checkpoints.iterdir()):
            saved = json.loads(record.read_text())
            if saved != now:
                raise UserError(f"{workdir} holds a hypernetwork for the base {saved.get('workdir')} at step "
                                f"{saved.get('step')}, but config.base_workdir is {now['workdir']} at step "
                                f"{now['step']}; use a new --workdir, or point base_workdir at the original base run")
        if jax.process_index() == 0:
            workdir.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(now, indent=2) + "\n")
            zr.base.tokenizer.save(workdir)
        return zr.run

    def data(self, cfg, run: Run) -> tuple[Any, list[dict]]:
        from lexi.data.corpora import get_corpus
        from lexi.zett.byte_like import ByteLike
        from lexi.zett.sampler import ZettBatches
        from lexi.zett.validation import validation_batches

        corpus = get_corpus(cfg.data)
        z, t = cfg.zett, cfg.train
        streaming = cfg.data.get("input_pipeline", "cached") == "streaming"

        def batches(documents: list[str], seed: int, batch_size: int, byte_like=None):
            return ZettBatches(documents, self.zett.base.tokenizer, seq_len=cfg.data.seq_len,
                               batch_size=batch_size, vocab_size=z.vocab_size, pieces_per_token=cfg.hypernet.pieces,
                               window=z.window, seed=seed, process_index=jax.process_index(),
                               process_count=jax.process_count(), noise_mu=z.noise_mu, noise_sigma=z.noise_sigma,
                               byte_like=byte_like)

        train_like = ByteLike.from_config(z)  # training only: validation keeps ordinary sampled tokenizers

        if streaming:  # bounded: the validation split's head, the train split as a rolling buffer of documents
            from lexi.data.streaming import head_documents

            val_docs = head_documents(corpus, "validation", int(cfg.data.get("streaming_validation_documents", 2000)))
        else:
            val_docs = list(corpus.documents("validation"))
        val_source = batches(val_docs, cfg.seed + 1_000_003, t.batch_size)
        val = validation_batches(val_source, t.eval_batches)  # sampled tokenizers, then the fixed targets
        if streaming:
            return streamed_text(cfg, corpus, lambda docs: batches(docs, cfg.seed, t.batch_size, train_like)), val
        return batches(list(corpus.documents("train")), cfg.seed, t.batch_size, train_like), val

    def init_state(self, run: Run, seed: int) -> TrainState:
        return initial_state(self.zett, seed)

    def compile(self, run: Run, val: list[dict]) -> tuple[StepFn, EvalFn]:
        cfg, mesh, zr = run.cfg, run.mesh, self.zett
        train_step, eval_step = make_zett_steps(run.model, zr.hypernet, run.tx, aux_weight=cfg.zett.aux_weight,
                                                identity_steps=cfg.zett.identity_steps, schedule=run.schedule)
        frozen_sh = jax.tree_util.tree_map(lambda a: a.sharding, zr.frozen)
        text_sh = {k: sharding.batch_sharding(mesh) for k in TEXT_KEYS}
        vocab_sh = vocab_shardings(mesh, zr.vocab_size)
        repl = sharding.replicated(mesh)
        jit_train = jax.jit(train_step, in_shardings=(run.state_shardings, frozen_sh, text_sh, vocab_sh, repl),
                            out_shardings=(run.state_shardings, repl), donate_argnums=(0,))
        jit_eval = jax.jit(eval_step, in_shardings=(run.state_shardings.params, frozen_sh, text_sh, vocab_sh,
                                                    sharding.batch_sharding(mesh, 1)), out_shardings=repl)

        def on_device(local: dict):
            text = sharding.global_batch({k: local["text"][k] for k in TEXT_KEYS}, mesh)
            vocab = {k: _global(np.asarray(a), vocab_sh[k]) for k, a in local["vocab"].items()}
            return text, vocab

        def step(state, local: dict, rng):
            text, vocab = on_device(local)
            with sharding.activation_context(mesh, run.rules):
                return jit_train(state, zr.frozen, text, vocab, rng)

        def evaluate(state, rng) -> dict:
            """val_loss (sampled tokenizers) and val_bpb_<target> per fixed target (validation.py)."""
            totals: dict[str, tuple[float, float]] = {}
            for vb in val:
                text, vocab = on_device(vb)
                nb = sharding.global_batch({"b": np.asarray(vb["text"]["num_bytes"], np.float32)}, mesh)["b"]
                with sharding.activation_context(mesh, run.rules):
                    out = jit_eval(state.params, zr.frozen, text, vocab, nb)
                nll, total_bytes = totals.get(vb.get("target", SAMPLED), (0.0, 0.0))
                totals[vb.get("target", SAMPLED)] = (nll + float(out["nll"]), total_bytes + float(out["bytes"]))
            return validation_metrics(totals)

        return step, evaluate

    def flops_per_token(self, run: Run) -> float:
        """Backbone forward and input-gradient pass (no weight gradients: 2 forwards) plus the
        hypernetwork's training FLOPs per step spread over the step's text tokens."""
        cfg, zr = run.cfg, self.zett
        lm = 2.0 * flops_lib.forward_flops_per_token(zr.base.backbone, zr.vocab_size, cfg.data.seq_len)
        h = hypernet_config(cfg, zr.base)
        d, p = h.d_model, h.pieces
        per_piece = h.num_layers * (2 * 4 * d * d + 2 * 2 * h.mlp_ratio * d * d + 2 * 2 * d * p)
        per_token = p * (per_piece + 2 * d * d * (1 if h.tied else 2)) + 2 * d * d * (1 if h.tied else 2)
        tokens = cfg.train.batch_size * cfg.data.seq_len
        return lm + 3.0 * zr.vocab_size * per_token / tokens


def streamed_text(cfg, corpus, make):
    """input_pipeline=streaming: the train split read through the streaming source as a rolling buffer
    of config.data.streaming_shuffle_documents documents (lexi/data/stream_blocks.py), each drawn from
    for about one read of its text and at least config.zett.window steps. Every process reads every
    shard: a step's vocabulary is sampled from the whole batch's text, the same on all processes."""
    from lexi.data.shards import process_shards
    from lexi.data.stream_blocks import DocumentBlocks
    from lexi.data.streaming import _seed
    from lexi.zett.sampler import CHARS_PER_TOKEN

    d, t = cfg.data, cfg.train
    return DocumentBlocks(process_shards(corpus, "train", 0, 1), make,
                          block_documents=int(d.get("streaming_shuffle_documents", 10_000)),
                          chars_per_step=t.batch_size * (d.seq_len + 1) * CHARS_PER_TOKEN,
                          min_steps=int(cfg.zett.window), seed=_seed(cfg.seed, 0, 3),
                          open_shards=int(d.get("streaming_open_files", 4)),
                          what=f"the train split of corpus {corpus.name!r}")


def vocab_shardings(mesh, vocab_size: int) -> dict:
    """Vocabulary rows split over the data-parallel devices: the hypernetwork's work (one
    encoder pass per token) is spread like a batch; replicated if they do not divide it."""
    axes = tuple(a for a in sharding.BATCH_AXES if mesh.shape[a] > 1)
    split = axes and vocab_size % math.prod(mesh.shape[a] for a in axes) == 0
    row = lambda nd: NamedSharding(mesh, P(axes if split else None, *([None] * (nd - 1))))
    return {"pieces": row(2), "lengths": row(1), "mask": row(1), "special": row(1)}


def _global(a: np.ndarray, s: NamedSharding) -> jax.Array:
    """Every process holds the whole vocabulary array: each supplies its devices' slices."""
    return jax.make_array_from_callback(a.shape, s, lambda idx: a[idx])

