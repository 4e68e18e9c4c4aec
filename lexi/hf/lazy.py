"""A tensor that is not read yet, and the layout changes import applies to it.

Import turns each Hugging Face tensor into lexi's layout (a transpose, a split of the head
axis, a column range; lexi/hf/architectures.py) and then each device reads only its block
of the result. `Lazy` keeps those changes as index arithmetic, so `np.asarray(view[box])`
asks the file for the block's source range and nothing else (at most the block's rows
in full, when a split axis is cut inside a head).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

Box = tuple[slice, ...]  # one contiguous range [start, stop) per axis


class Lazy:
    """`shape`, `dtype` and `read(box)`; `.T`, `.reshape` (splitting axes) and slicing give new
    Lazy tensors, `np.asarray` reads."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, read: Callable[[Box], np.ndarray]):
        self.shape, self.dtype, self._read = tuple(int(s) for s in shape), np.dtype(dtype), read

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def read(self, box: Box) -> np.ndarray:
        return self._read(box)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self._read(tuple(slice(0, s) for s in self.shape))
        return a if dtype is None else a.astype(dtype, copy=False)

    def __getitem__(self, idx) -> "Lazy":
        box = _box(idx, self.shape)
        return Lazy(tuple(b.stop - b.start for b in box), self.dtype,
                    lambda sub: self._read(tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))))

    @property
    def T(self) -> "Lazy":
        return Lazy(self.shape[::-1], self.dtype, lambda box: self._read(box[::-1]).T)

    def reshape(self, *shape) -> "Lazy":
        """Only splits of axes into consecutive axes ([n*h, d] -> [n, h, d]), which is all import does."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        groups, j = [], 0
        for size in self.shape:  # each old axis becomes new axes j..k whose sizes multiply to it
            k, prod = j, 1
            while k < len(shape) and (prod < size or (size == 1 and k == j)):
                prod *= shape[k]
                k += 1
            if prod != size:
                raise ValueError(f"Lazy.reshape only splits axes: {self.shape} -> {shape}")
            groups.append((j, k))
            j = k
        if j != len(shape):
            raise ValueError(f"Lazy.reshape only splits axes: {self.shape} -> {shape}")
        return Lazy(shape, self.dtype, lambda box: _split_read(self._read, box, shape, groups))


def _box(idx, shape: tuple[int, ...]) -> Box:
    idx = idx if isinstance(idx, tuple) else (idx,)
    if len(idx) > len(shape) or not all(isinstance(i, slice) for i in idx):
        raise IndexError(f"Lazy tensors take one slice per axis, got {idx!r} for shape {shape}")
    out = []
    for i, size in enumerate(shape):
        start, stop, step = (idx[i] if i < len(idx) else slice(None)).indices(size)
        if step != 1:
            raise IndexError("Lazy tensors take contiguous slices only")
        out.append(slice(start, max(start, stop)))
    return tuple(out)


def _split_read(read, box: Box, shape: tuple[int, ...], groups) -> np.ndarray:
    """Read `box` of the split view: for each old axis, the range of its outermost new axis with
    the inner ones whole (exact when they are whole in `box`), then cut the inner ranges."""
    src_box, cut = [], []
    for j, k in groups:
        inner = math.prod(shape[j + 1:k])
        src_box.append(slice(box[j].start * inner, box[j].stop * inner))
    block = read(tuple(src_box))
    sizes = [box[j].stop - box[j].start if i == j else shape[i] for j, k in groups for i in range(j, k)]
    block = block.reshape(sizes)
    for j, k in groups:
        cut += [slice(None)] + [box[i] for i in range(j + 1, k)]
    return block[tuple(cut)]
