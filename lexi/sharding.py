"""Device mesh and the logical-axis rules that place every array on it.

Parameters carry logical axis names (`nn.with_logical_partitioning` in the model code);
the config's `mesh.rules` maps each name to mesh axes. A dimension that its mesh axes do
not divide is replicated rather than failing, so odd vocabularies (259 bytes) still run.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from lexi.errors import UserError

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical name -> mesh axis (or tuple of axes, or None = replicated)
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", BATCH_AXES),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("kv", None),
    ("layers", None),
    ("norm", None),
    ("relpos_buckets", None),
    ("positions", None),
    ("length", None),
    ("act_embed", None),
    ("act_mlp", "tensor"),
    ("act_heads", "tensor"),
    ("act_kv", None),
)


def rules_from_config(mesh_cfg) -> tuple[tuple[str, Any], ...]:
    rules = mesh_cfg.get("rules") if hasattr(mesh_cfg, "get") else None
    if not rules:
        return DEFAULT_RULES
    out = []
    for name, axes in rules:
        axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
        for a in (axes if isinstance(axes, tuple) else (axes,)):
            if a is not None and a not in AXES:
                raise UserError(f"config.mesh.rules maps {name!r} to unknown mesh axis {a!r}; axes are {AXES}")
        out.append((name, axes))
    return tuple(out)


def mesh_shape(shape_cfg: dict, num_devices: int) -> tuple[int, ...]:
    """Resolve {data, fsdp, tensor} with at most one -1 ("all remaining devices")."""
    sizes = [int(shape_cfg.get(a, 1)) for a in AXES]
    if sizes.count(-1) > 1:
        raise UserError(f"config.mesh.shape {dict(zip(AXES, sizes))}: at most one axis may be -1")
    if any(s == 0 or s < -1 for s in sizes):
        raise UserError(f"config.mesh.shape {dict(zip(AXES, sizes))}: sizes must be positive or -1")
    fixed = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if num_devices % fixed:
            raise UserError(f"config.mesh.shape {dict(zip(AXES, sizes))} needs a multiple of {fixed} devices, "
                            f"but {num_devices} are available")
        sizes[sizes.index(-1)] = num_devices // fixed
    if math.prod(sizes) != num_devices:
        raise UserError(f"config.mesh.shape {dict(zip(AXES, sizes))} uses {math.prod(sizes)} devices, "
                        f"but {num_devices} are available; change the shape or use -1 for one axis")
    return tuple(sizes)


def make_mesh(shape_cfg: dict, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with axes (data, fsdp, tensor); Auto axis types, so XLA propagates shardings
    from the parameter and batch placements plus the model's activation hints."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = mesh_shape(shape_cfg, len(devices))
    auto = (AxisType.Auto,) * len(AXES)
    try:
        return jax.make_mesh(sizes, AXES, axis_types=auto, devices=devices)
    except Exception:  # make_mesh wants a topology it recognises; fall back to device order
        return Mesh(np.asarray(devices).reshape(sizes), AXES, axis_types=auto)


@contextlib.contextmanager
def activation_context(mesh: Mesh, rules):
    """Active while tracing a step: lets the model's logical activation hints resolve."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield


def _spec_for(logical: P | None, shape: tuple[int, ...], mesh: Mesh, rules) -> P:
    if logical is None or len(logical) == 0:
        return P()
    table = dict(rules)
    used: set[str] = set()
    out = []
    for dim, name in zip(shape, tuple(logical) + (None,) * (len(shape) - len(logical))):
        axes = table.get(name) if name is not None else None
        axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
        axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
        size = math.prod(mesh.shape[a] for a in axes)
        if not axes or dim % size:
            out.append(None)
            continue
        used.update(axes)
        out.append(axes[0] if len(axes) == 1 else axes)
    return P(*out)


def tree_shardings(abstract_boxed: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings for a tree of (possibly logically boxed) arrays or ShapeDtypeStructs."""
    logical = nn.get_partition_spec(abstract_boxed)
    unboxed = nn.meta.unbox(abstract_boxed)
    return jax.tree_util.tree_map(
        lambda spec, x: NamedSharding(mesh, _spec_for(spec, tuple(x.shape), mesh, rules)),
        logical, unboxed, is_leaf=lambda x: isinstance(x, P) or x is None)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local: dict, mesh: Mesh) -> dict:
    """Assemble this process's rows into global arrays sharded over the batch axes."""
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v) for k, v in local.items()}


def batch_divisor(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)
