"""Helper script for test_sharding.py (run in a subprocess with 8 simulated CPU devices):
prints the losses of a few train steps on several meshes as JSON."""
import json
import os
import sys

from xla_flags import xla_flags  # (this script's folder, tests/, is on sys.path)

os.environ["XLA_FLAGS"] = xla_flags(8)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from lexi import sharding  # noqa: E402
from lexi.config import base_config  # noqa: E402
from lexi.train.setup_run import assemble, compile_steps, init_state  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from harness import synthetic_batch  # noqa: E402


def losses(kind: str, mesh_shape: dict, steps: int = 3, grad_accum: int = 1) -> list[float]:
    c = base_config()
    c.model.update(num_layers=2, d_model=32, num_heads=4, head_dim=8, mlp_dim=64)
    c.embedding = {"kind": kind} if kind != "frozen" else {"kind": "frozen", "source": "binary", "code_bits": 16}
    if kind == "adafactor":  # factored second moments (lower rank than their parameters), scanned layers
        c.embedding = {"kind": "trainable"}
        c.train.optimizer = "adafactor"
        c.model.scan_layers = True
    c.data.seq_len = 16
    c.train.update(batch_size=8, steps=10, warmup_steps=2, lr=1e-2, grad_accum=grad_accum)
    c.mesh.shape = mesh_shape
    n = int(np.prod(list(mesh_shape.values())))
    mesh = sharding.make_mesh(mesh_shape, jax.devices()[:n])
    run = assemble(c, 64, (0,), mesh)
    state = init_state(run, seed=0)
    train_step, _ = compile_steps(run)
    rng = jax.random.key(0)
    out = []
    for s in range(steps):
        batch = sharding.global_batch(synthetic_batch(8, 16, 64, seed=0), mesh)  # one batch: loss must fall
        state, m = train_step(state, batch, rng)
        out.append(float(m["loss"]))
    leaf = jax.tree_util.tree_leaves(state.params)[0]
    if kind == "frozen":  # the frozen table is laid out by the same rules and never changes
        table = state.constants["embedding"]["table"]
        assert table.sharding.spec == run.state_shardings.constants["embedding"]["table"].spec
        before = jax.device_get(init_state(run, seed=0).constants["embedding"]["table"])
        np.testing.assert_array_equal(jax.device_get(table), before)
    return out + [float(np.asarray(jax.device_get(leaf)).sum())]


if __name__ == "__main__":
    kind = sys.argv[1]
    result = {
        "single": losses(kind, {"data": 1, "fsdp": 1, "tensor": 1}),
        "dp_fsdp_tp": losses(kind, {"data": 2, "fsdp": 2, "tensor": 2}),
        "fsdp8": losses(kind, {"data": 1, "fsdp": 8, "tensor": 1}),
        "accum": losses(kind, {"data": 1, "fsdp": 1, "tensor": 1}, grad_accum=4),
    }
    print(json.dumps(result))
