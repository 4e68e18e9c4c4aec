"""Ahead-of-time compilation of the real training step for a TPU pod, on any machine.

`libtpu` (PyPI, `pip install "lexi[tpu]"`) describes a pod topology without the hardware;
the run's mesh is built over that topology's devices, the train step is lowered with
abstract (shape-only) state and batch carrying the run's shardings, and XLA's TPU
compiler reports memory per device and FLOPs. Nothing is allocated: a 1B-parameter
model for 256 chips compiles on a laptop.

Figures in the report (per device unless named otherwise):
- bytes_per_device.params / optimizer / constants / batch: the shards of the state and
  batch this device holds, from the shardings the run would use;
- bytes_per_device.temporary: XLA's temporary buffers (activations, gradients, collectives);
- bytes_per_device.total: everything the compiled step holds at its peak, XLA's own
  accounting (arguments + outputs - donated aliases + temporaries + generated code);
- device_memory_bytes: the chip's HBM divided among the devices JAX makes of it;
  `fits` = total <= device_memory_bytes (XLA needs some headroom beyond this);
- flops_per_step: the model FLOPs of one step (lexi/train/flops.py, the MFU numerator);
  compiled_flops_per_step: XLA's count over all devices (includes rematerialisation, but
  counts a scanned layer stack's body once, so with `scan_layers` it is about 1/num_layers
  of the real figure: read flops_per_step there).
"""
from __future__ import annotations

import math
import os
import re
import time

import jax
import jax.numpy as jnp

from lexi import sharding
from lexi.errors import UserError

# device_kind -> HBM per chip (bytes), from the vendor's datasheets
_HBM_PER_CHIP = (
    ("TPU v6 lite", 32 << 30),  # v6e (Trillium)
    ("TPU v5 lite", 16 << 30),  # v5e
    ("TPU v5p", 95 << 30),
    ("TPU v5", 95 << 30),  # v5p reports "TPU v5"
    ("TPU v4 lite", 8 << 30),
    ("TPU v4", 32 << 30),
    ("TPU v3", 32 << 30),
    ("TPU v2", 16 << 30),
)


def topology_devices(name: str) -> list:
    """The devices of a TPU pod slice named like `v5e:16x16` or `v4:2x2x2` (libtpu's names)."""
    try:
        from jax.experimental import topologies
    except ImportError as e:  # pragma: no cover - very old JAX
        raise UserError(f"this JAX has no jax.experimental.topologies: {e}") from e
    try:
        import libtpu  # noqa: F401
    except ImportError:
        raise UserError("compiling for a TPU topology needs libtpu: pip install \"lexi[tpu]\" "
                        "(or pip install libtpu matching your jax version)") from None
    # we only describe a pod: no local TPU is opened, so several compiles may run at once
    # (libtpu otherwise takes a machine-wide lock file), and no cloud metadata is queried
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    if not re.fullmatch(r"[A-Za-z0-9_ ]+[:=_][0-9x]+(_twisted|_untwisted)?", name):
        raise UserError(f"--topology {name!r}: expected a TPU generation and chip grid, e.g. v5e:16x16, v4:2x2x2, v3:2x2")
    try:
        topo = topologies.get_topology_desc(platform="tpu", topology_name=name)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"libtpu does not know topology {name!r}: {first}") from e
    return list(topo.devices)


def device_memory_bytes(devices: list, topology: str) -> int | None:
    kind = devices[0].device_kind
    hbm = next((b for k, b in _HBM_PER_CHIP if kind.lower().startswith(k.lower())), None)
    if hbm is None:
        return None
    grid = re.search(r"[:=_]([0-9x]+)", topology)
    chips = math.prod(int(x) for x in grid.group(1).split("x")) if grid else len(devices)
    per_chip = max(1, round(len(devices) / chips))
    return hbm // per_chip


def _shard_bytes(tree) -> int:
    """Bytes of the shard device 0 holds, over a tree of ShapeDtypeStructs with shardings."""
    total = 0
    for x in jax.tree_util.tree_leaves(tree):
        shape = x.sharding.shard_shape(x.shape) if getattr(x, "sharding", None) is not None else x.shape
        total += math.prod(shape) * jnp.dtype(x.dtype).itemsize
    return int(total)


def abstract_batch(cfg, mesh) -> dict:
    """The global batch's shapes, dtypes and sharding, without data."""
    from lexi.model.init import dummy_batch

    sh = sharding.batch_sharding(mesh)
    shapes = jax.eval_shape(lambda: dummy_batch(cfg, cfg.train.batch_size))
    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh) for k, v in shapes.items()}


def compile_for_topology(cfg, topology: str) -> dict:
    """Lower and compile `cfg`'s train step for the pod slice `topology`; the report above."""
    from lexi import config as config_lib
    from lexi.train import flops as flops_lib
    from lexi import tokenizers
    from lexi.rundir import cache_dir
    from lexi.train.setup_run import assemble, jit_steps

    config_lib.validate(cfg)
    if cfg.get("task", "lm") != "lm":
        raise UserError(f"lexi compile builds language-model steps; config.task={cfg.task!r} is not supported yet")
    devices = topology_devices(topology)
    mesh = sharding.make_mesh(dict(cfg.mesh.shape), devices)
    divisor = sharding.batch_divisor(mesh) * cfg.train.grad_accum
    if cfg.train.batch_size % divisor:
        raise UserError(f"config.train.batch_size ({cfg.train.batch_size}) must be a multiple of the data-parallel "
                        f"devices x grad_accum ({divisor}) for mesh {dict(mesh.shape)} on {topology}")
    vocab, specials = tokenizers.size_from_config(cfg.data.tokenizer, cache_dir(cfg))
    run = assemble(cfg, vocab, specials, mesh)
    train_step, _ = jit_steps(run)
    batch = abstract_batch(cfg, mesh)
    rng = jax.ShapeDtypeStruct((), jax.eval_shape(lambda: jax.random.key(0)).dtype,
                               sharding=sharding.replicated(mesh))
    t0 = time.perf_counter()
    with sharding.activation_context(mesh, run.rules):
        lowered = train_step.lower(run.abstract_state, batch, rng)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0

    state = run.abstract_state
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
    per_device = {
        "params": _shard_bytes(state.params),
        "optimizer": _shard_bytes(state.opt_state),
        "constants": _shard_bytes(state.constants),
        "batch": _shard_bytes(batch),
    }
    if mem is not None:
        per_device["temporary"] = int(mem.temp_size_in_bytes)
        per_device["generated_code"] = int(mem.generated_code_size_in_bytes)
        per_device["total"] = int(mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
                                  + mem.temp_size_in_bytes + mem.generated_code_size_in_bytes)
    else:  # no analysis from this backend: the state and batch shards are a lower bound
        per_device["total"] = sum(per_device.values())
    hbm = device_memory_bytes(devices, topology)
    tokens = cfg.train.batch_size * cfg.data.seq_len
    model_flops = flops_lib.train_flops_per_token(run.model.backbone, vocab, cfg.data.seq_len) * tokens
    return {
        "topology": topology,
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "mesh": {k: int(v) for k, v in mesh.shape.items()},
        "params": flops_lib.param_count(state.params),
        "vocab_size": vocab,
        "tokens_per_step": tokens,
        "bytes_per_device": per_device,
        "device_memory_bytes": hbm,
        "fits": None if hbm is None else per_device["total"] <= hbm,
        "flops_per_step": model_flops,
        "compiled_flops_per_step": float(cost.get("flops", 0.0)) * len(devices) if cost else None,
        "compile_seconds": round(compile_s, 1),
    }


def format_report(r: dict) -> str:
    gib = lambda n: f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
    b = r["bytes_per_device"]
    lines = [f"{r['topology']}: {r['num_devices']} x {r['device_kind']}, mesh {r['mesh']}, "
             f"{r['params'] / 1e6:.1f}M parameters, compiled in {r['compile_seconds']} s",
             "per device: " + ", ".join(f"{k} {gib(v)}" for k, v in b.items())]
    if r["device_memory_bytes"]:
        lines.append(f"device memory {gib(r['device_memory_bytes'])}: {'fits' if r['fits'] else 'DOES NOT FIT'}")
    lines.append(f"model FLOPs per step {r['flops_per_step']:.3e}"
                 + (f"; XLA counts {r['compiled_flops_per_step']:.3e}" if r["compiled_flops_per_step"] else ""))
    return "\n".join(lines)
