"""Peak FLOP/s of the devices, the denominator of MFU.

Accelerators: the vendor's dense peak for the compute dtype (bf16; f32 on GPUs means TF32
tensor cores off, so the bf16 figure would overstate MFU and we use the f32 one). CPU: there
is no datasheet figure worth trusting, so we measure a large f32/bf16 matmul on this machine
and call that the peak; benchmarks print it beside their results.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

# device_kind substring -> (bf16 dense peak, f32 peak) FLOP/s per device
_KNOWN = {
    "H200": (989e12, 67e12),
    "H100": (989e12, 67e12),
    "A100": (312e12, 19.5e12),
    "L4": (121e12, 30e12),
    "TPU v6": (918e12, 918e12 / 4),
    "TPU v5p": (459e12, 459e12 / 4),
    "TPU v5 lite": (197e12, 197e12 / 4),
    "TPU v5e": (197e12, 197e12 / 4),
    "TPU v4": (275e12, 275e12 / 4),
    "TPU v3": (61.5e12, 61.5e12 / 4),  # JAX's device is one of the chip's two cores (123 TFLOP/s per chip)
    "TPU v2": (22.5e12, 22.5e12 / 4),  # per core, as v3
}


@functools.lru_cache(maxsize=None)
def measured_matmul_flops(dtype: str = "float32", sizes: tuple[int, ...] = (1024, 2048), seconds: float = 0.6) -> float:
    """Best observed FLOP/s of square matmuls on device 0 (the best size and run wins, so the
    figure is a ceiling that real steps are measured against, not an average)."""
    best = 0.0
    for n in sizes:
        a = jnp.ones((n, n), jnp.dtype(dtype))
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        deadline = time.perf_counter() + seconds / len(sizes)
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            f(a).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def peak_flops_per_device(dtype: str = "float32") -> tuple[float, str]:
    """(FLOP/s, where the figure came from)."""
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return measured_matmul_flops(dtype), "measured matmul peak of this CPU"
    for key, (bf16, f32) in _KNOWN.items():
        if key.lower() in dev.device_kind.lower():
            return (bf16 if dtype != "float32" else f32), f"datasheet {dev.device_kind}"
    return measured_matmul_flops(dtype, (4096, 8192)), f"measured matmul peak of {dev.device_kind}"
