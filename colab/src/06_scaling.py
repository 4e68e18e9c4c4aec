# %% [markdown]
# # 6. Scaling out: meshes, shardings and compiling for a TPU pod
#
# The same lexi code trains on one CPU, several GPUs, or a TPU pod: the config's `mesh` section
# says how the devices are arranged in three axes,
#
# - `data`: splits the batch; every device holds all parameters,
# - `fsdp`: splits the batch *and* every parameter and optimizer slot (fully sharded data parallel),
# - `tensor`: splits attention heads, MLP units and vocabulary rows,
#
# and every parameter carries logical axis names (`vocab`, `embed`, `mlp`, `heads`, ...) that
# `lexi.sharding.DEFAULT_RULES` maps to those mesh axes. This notebook builds a mesh over the
# devices it has, prints where each parameter goes, trains a few steps on it, and compiles the
# training step for a TPU pod it does not have (`lexi compile`), to read its memory per chip.
#
# On a CPU runtime the first cell splits the CPU into 8 virtual devices (an XLA flag that must be
# set before JAX is imported), so the 2 x 2 x 2 mesh below exists even on a laptop.
# `docs/scaling.md` has the multi-host launch commands and measured pod figures.

# %% [setup cpu_devices=8]

# %% [markdown]
# ## Parameters
#
# The mesh uses every device: `data` x `fsdp` x `tensor` = 2 x 2 x 2 on 8 devices (more data
# parallelism on larger slices). The ahead-of-time compile targets a v5e slice; in smoke mode a
# 2 x 2 one with the tiny model, otherwise the 1B-parameter `paper_1b` config on a v5e-256
# (`16x16`), about 1.5 CPU minutes.

# %%
def mesh_for(n):
    """{data, fsdp, tensor} sizes using all n devices, with fsdp and tensor 2 where possible."""
    fsdp = 2 if n % 2 == 0 else 1
    tensor = 2 if n % (2 * fsdp) == 0 and n >= 8 else 1
    return {"data": n // (fsdp * tensor), "fsdp": fsdp, "tensor": tensor}


MESH = mesh_for(jax.device_count())
SIZE = "tiny" if BACKEND == "cpu" else "small"
TRAIN_STEPS = 20
AOT = ("lexinvariant.py:paper_1b", "v5e:16x16", [])
if SMOKE:
    TRAIN_STEPS = 4
    AOT = ("lexinvariant.py:tiny", "v5e:2x2",
           ["--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=2", "--config.mesh.shape.tensor=2"])
print(f"{jax.device_count()} devices -> mesh {MESH}; AOT: {AOT[0]} on {AOT[1]}")

# %% [markdown]
# ## 1. A mesh over the devices
#
# `lexi.sharding.make_mesh` turns the config's `mesh.shape` into a `jax.sharding.Mesh` with axes
# `(data, fsdp, tensor)`; one axis may be -1 ("all remaining devices").

# %%
from lexi import sharding
from lexi.config import load_config

overrides = [f"--config.mesh.shape.{axis}={size}" for axis, size in MESH.items()]
cfg = load_config(f"{CONFIGS}/lexinvariant.py:{SIZE}", overrides)
mesh = sharding.make_mesh(dict(cfg.mesh.shape))
print(mesh)
print(np.vectorize(lambda d: d.id)(mesh.devices))  # device ids laid out on the (data, fsdp, tensor) grid

# %% [markdown]
# ## 2. Where every parameter goes
#
# `lexi.train.setup_run.assemble(cfg, vocab_size)` builds the model and optimizer abstractly
# (shapes only, nothing allocated) and derives `state_shardings`: one `NamedSharding` per array
# of the train state. A dimension whose mesh axes do not divide it stays replicated (`None`).
# The table lists the parameters; optimizer slots follow their parameters.

# %%
from lexi import tokenizers
from lexi.rundir import cache_dir
from lexi.train.setup_run import assemble

vocab, specials = tokenizers.size_from_config(cfg.data.tokenizer, cache_dir(cfg))
run = assemble(cfg, vocab, specials, mesh)
leaves = jax.tree_util.tree_flatten_with_path(run.abstract_state.params)[0]
lines = ["| parameter | shape | PartitionSpec | per device |", "|---|---|---|---|"]
for path, leaf in leaves:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    lines.append(f"| `{name}` | {tuple(leaf.shape)} | `{leaf.sharding.spec}` | "
                 f"{tuple(leaf.sharding.shard_shape(leaf.shape))} |")
display(Markdown("\n".join(lines)))
sharded = sum(any(s is not None for s in leaf.sharding.spec) for _, leaf in leaves)
print(f"{len(leaves)} parameter arrays, {sharded} of them split over the mesh; rules: {dict(sharding.DEFAULT_RULES)}")

# %% [markdown]
# ## 3. Train on the mesh
#
# The ordinary `lexi.train.loop.train` call: the batch is split over `data` x `fsdp`, the state
# is laid out as above, and one jit-compiled step runs on all devices. The resulting arrays are
# really split: below, which device holds which block of the MLP's input matrix.

# %%
from lexi.inference import load_for_inference
from lexi.train.loop import train

cfg.train.update(steps=TRAIN_STEPS, warmup_steps=2, log_every=2, eval_every=TRAIN_STEPS,
                 checkpoint_every=TRAIN_STEPS)
last = train(cfg, WORKDIR / "sharded")
print(f"trained {TRAIN_STEPS} steps on {mesh.devices.size} devices: loss {last['loss']:.3f}")
params = load_for_inference(WORKDIR / "sharded").params
split = [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]
         if x.ndim == 2 and len({s.device for s in x.addressable_shards}) > 1]
if split:
    name, matrix = split[0]
    print(f"{name}: {matrix.shape}, {matrix.sharding.spec}")
    jax.debug.visualize_array_sharding(matrix)
else:
    print("one device: every array is whole on it")

# %% [markdown]
# ## 4. Compile for a TPU pod (`lexi compile`)
#
# `lexi.aot.compile_for_topology(cfg, "v5e:16x16")` asks libtpu to describe the pod, builds the
# run's mesh over its (absent) chips, lowers the real train step with shape-only state and batch
# and lets XLA's TPU compiler report the memory each chip needs. It needs `libtpu`
# (`pip install "lexi[tpu]"`); without it this cell says so and skips.

# %%
import importlib.util

from lexi import aot
from lexi.config import load_config

aot_report = None
if importlib.util.find_spec("libtpu") is None:
    print("libtpu is not installed: skipping the pod compile (pip install 'lexi[tpu]' to run it)")
else:
    spec, topology, aot_overrides = AOT
    try:
        aot_report = aot.compile_for_topology(load_config(f"{CONFIGS}/{spec}", aot_overrides), topology)
        print(aot.format_report(aot_report))
    except Exception as e:  # lexi's UserError explains itself; anything else (e.g. a local TPU in use) too
        print(f"skipping the pod compile: {type(e).__name__}: {e}")

# %% [markdown]
# ## Summary

# %%
summary = {"python": sys.executable, "backend": BACKEND, "devices": jax.device_count(),
           "mesh": {k: int(v) for k, v in mesh.shape.items()}, "param_rows": len(leaves),
           "sharded_params": int(sharded), "train_loss": float(last["loss"]), "aot": aot_report}
(WORKDIR / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: v for k, v in summary.items() if k != "aot"}, indent=2))
