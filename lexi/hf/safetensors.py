"""Safetensors files read lazily and written, without torch or the safetensors package.

The format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw bytes. Reading memory-maps the file and gives
numpy views, so a tensor (or the slice of it one device holds) is read from disk only when
it is used: a checkpoint of any size loads tensor by tensor, never whole into memory.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Mapping

import ml_dtypes
import numpy as np

from lexi.errors import UserError

DTYPES = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_),
}
NAMES = {v: k for k, v in DTYPES.items()}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class SafetensorsFile:
    """One .safetensors file: `names()`, `shape(name)` and `view(name)` (a read-only memmap view)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
        except (OSError, struct.error, ValueError) as e:
            raise UserError(f"{self.path} is not a readable safetensors file ({e})") from None
        self.metadata = header.pop("__metadata__", {}) or {}
        self._header = header
        self._start = 8 + n
        self._map = np.memmap(self.path, dtype=np.uint8, mode="r")

    def names(self) -> list[str]:
        return list(self._header)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._header[name]["shape"])

    def view(self, name: str) -> np.ndarray:
        info = self._header[name]
        if info["dtype"] not in DTYPES:
            raise UserError(f"{self.path}: tensor {name} has dtype {info['dtype']}, which lexi cannot read")
        lo, hi = info["data_offsets"]
        raw = self._map[self._start + lo:self._start + hi]
        return raw.view(DTYPES[info["dtype"]]).reshape(info["shape"])


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

    def view(self, name: str) -> np.ndarray:
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
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, a in tensors.items():
        if a.dtype not in NAMES:
            raise ValueError(f"cannot write dtype {a.dtype} of {name}")
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in tensors.values():
            f.write(a.tobytes())  # C order, whatever the array's layout
