"""Hugging Face safetensors weights through the `safetensors` package, read lazily.

`safe_open(..., framework="numpy")` memory-maps each file and `get_slice` reads a range of a
tensor; wrapped as `Lazy` (lexi/hf/lazy.py), a checkpoint of any size imports block by
block, each device reading only its part of each tensor, never the file whole into memory.
bfloat16 is numpy's through ml_dtypes, which must be imported before the package sees it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from lexi.errors import UserError
from lexi.hf.lazy import Lazy

DTYPES = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_),
}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class SafetensorsFile:
    """One .safetensors file: `names()`, `shape(name)` and `view(name)` (a `Lazy` tensor)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._file = safe_open(str(self.path), framework="numpy")
        except (OSError, SafetensorError) as e:
            raise UserError(f"{self.path} is not a readable safetensors file ({e})") from None
        self.metadata = self._file.metadata() or {}

    def names(self) -> list[str]:
        return list(self._file.keys())

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._file.get_slice(name).get_shape())

    def view(self, name: str) -> Lazy:
        part = self._file.get_slice(name)
        dtype = part.get_dtype()
        if dtype not in DTYPES:
            raise UserError(f"{self.path}: tensor {name} has dtype {dtype}, which lexi cannot read")
        return Lazy(part.get_shape(), DTYPES[dtype], lambda box: np.asarray(part[box]))


class Checkpoint:
    """Every tensor of a Hugging Face model folder: one model.safetensors, or the shards named
    by model.safetensors.index.json."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        if (folder / INDEX).exists():
            weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        elif (folder / SINGLE).exists():
            files, weight_map = [SINGLE], None
        else:
            found = sorted(p.name for p in folder.glob("*.safetensors"))
            if not found:
                other = [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".h5", ".msgpack")]
                hint = (f" (it has {', '.join(other)}: re-save the model with "
                        "`model.save_pretrained(folder, safe_serialization=True)`)") if other else ""
                raise UserError(f"{folder} has no safetensors weights{hint}")
            files, weight_map = found, None
        missing = [f for f in files if not (folder / f).exists()]
        if missing:
            raise UserError(f"{folder}: shard(s) {missing} named by {INDEX} are missing")
        self.files = {f: SafetensorsFile(folder / f) for f in files}
        self._where = weight_map or {n: f for f, st in self.files.items() for n in st.names()}

    def names(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def view(self, name: str) -> Lazy:
        if name not in self._where:
            raise UserError(f"the checkpoint has no tensor {name!r}")
        return self.files[self._where[name]].view(name)


def write(tensors: Mapping[str, np.ndarray], folder: Path, max_shard_bytes: int = 5 << 30) -> list[Path]:
    """Write tensors as model.safetensors, or as shards plus an index when they exceed
    `max_shard_bytes`; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, a in tensors.items():
        if shards[-1] and size + a.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = a
        size += a.nbytes
    if len(shards) == 1:
        names = [SINGLE]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        _write_file(folder / name, shard)
    if len(shards) > 1:
        index = {"metadata": {"total_size": int(sum(a.nbytes for a in tensors.values()))},
                 "weight_map": {t: n for n, shard in zip(names, shards) for t in shard}}
        (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return [folder / n for n in names]


def _write_file(path: Path, tensors: Mapping[str, np.ndarray]) -> None:
    for name, a in tensors.items():
        if a.dtype not in DTYPES.values():
            raise ValueError(f"cannot write dtype {a.dtype} of {name}")
    # save_file writes an array's buffer as it lies in memory: a transposed view needs a C-order copy
    save_file({k: np.ascontiguousarray(a) for k, a in tensors.items()}, str(path), metadata={"format": "pt"})
