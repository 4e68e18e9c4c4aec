"""Hugging Face `tokenizer.json` files (BPE, Unigram, WordPiece, WordLevel) as a lexi tokenizer.

Encoding and decoding go through the optional `tokenizers` package (`pip install "lexi[hf]"`);
importing lexi does not need it. Everything else here reads the JSON alone, so lexi/zett/vocab.py
can turn such a file into a byte vocabulary without the package.

Specials: `encode` adds none (packing adds `bos_id` itself) and `decode` skips them. The pad,
bos, eos and unk ids come from the file: the post-processor's template (a special token before
the text is the bos, one after it the eos), `padding.pad_id`, the model's unk token, then common
names (`<s>`, `</s>`, `[CLS]`, `[SEP]`, `<|endoftext|>`, ...). A model without a bos uses its eos
(GPT-2's `<|endoftext|>` separates documents); one without a pad uses unk, else eos.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer, id_array
from lexi.tokenizers.sentencepiece import _valid_unicode

MODEL_FILE = "hf_tokenizer.json"  # name of the copy saved next to lexi's own tokenizer.json
INSTALL = 'pip install "lexi[hf]"'
MODEL_TYPES = ("BPE", "Unigram", "WordPiece", "WordLevel")

# Common spellings of each role, most specific first; the file's own structure wins over these.
ROLE_NAMES = {
    "bos": ("<s>", "<bos>", "<BOS>", "[CLS]", "<|begin_of_text|>", "<|startoftext|>", "<|bos|>"),
    "eos": ("</s>", "<eos>", "<EOS>", "[SEP]", "<|endoftext|>", "<|end_of_text|>", "<|eos|>", "<|eot_id|>"),
    "pad": ("<pad>", "<PAD>", "[PAD]", "<|pad|>", "<|padding|>"),
    "unk": ("<unk>", "<UNK>", "[UNK]", "<|unk|>"),
}


def is_hf_json(desc: Any) -> bool:
    """A parsed Hugging Face tokenizer.json (lexi's own has a "kind" instead of a "model")."""
    return (isinstance(desc, dict) and "kind" not in desc and isinstance(desc.get("model"), dict)
            and "type" in desc["model"])


def token_ids(data: dict) -> dict[str, int]:
    """Every token's text -> id: the model's vocabulary plus the added tokens."""
    model = data.get("model") or {}
    vocab = model.get("vocab") or {}
    ids = {str(p[0]): i for i, p in enumerate(vocab)} if isinstance(vocab, list) else dict(vocab)
    for t in data.get("added_tokens") or []:
        ids[t["content"]] = int(t["id"])
    return ids


@dataclasses.dataclass(frozen=True)
class Specials:
    """What a tokenizer.json says about its special tokens (None: the file has no such token)."""

    pad: Optional[int]
    bos: Optional[int]
    eos: Optional[int]
    unk: Optional[int]
    special: tuple[int, ...]  # the added tokens marked special


def _template_roles(proc: Any, ids: dict[str, int]) -> dict[str, int]:
    """bos / eos from a post-processor: specials before and after the single sequence."""
    if not isinstance(proc, dict):
        return {}
    kind = proc.get("type")
    if kind == "Sequence":
        out: dict[str, int] = {}
        for p in proc.get("processors") or []:
            out = {**_template_roles(p, ids), **out}
        return out
    if kind in ("BertProcessing", "RobertaProcessing"):
        return {role: int(proc[key][1]) for role, key in (("bos", "cls"), ("eos", "sep")) if proc.get(key)}
    if kind != "TemplateProcessing":
        return {}
    out, seen_text = {}, False
    for item in proc.get("single") or []:
        if "Sequence" in item:
            seen_text = True
            continue
        name = (item.get("SpecialToken") or {}).get("id")
        entry = (proc.get("special_tokens") or {}).get(name) or {}
        tid = (entry.get("ids") or [ids.get(name)])[0]
        if tid is not None:
            out.setdefault("eos" if seen_text else "bos", int(tid))
    return out


def _model_unk(model: dict, ids: dict[str, int]) -> Optional[int]:
    if model.get("type") == "Unigram":
        return None if model.get("unk_id") is None else int(model["unk_id"])
    return ids.get(model.get("unk_token")) if model.get("unk_token") is not None else None


def specials(data: dict) -> Specials:
    """The pad, bos, eos and unk ids of a parsed tokenizer.json (see the module docstring)."""
    ids = token_ids(data)
    found = _template_roles(data.get("post_processor"), ids)
    padding = data.get("padding")
    if isinstance(padding, dict) and padding.get("pad_id") is not None:
        found["pad"] = int(padding["pad_id"])
    unk = _model_unk(data.get("model") or {}, ids)
    if unk is not None:
        found["unk"] = unk
    for role, names in ROLE_NAMES.items():
        if role not in found:
            hit = next((ids[n] for n in names if n in ids), None)
            if hit is not None:
                found[role] = int(hit)
    special = tuple(sorted({int(t["id"]) for t in data.get("added_tokens") or [] if t.get("special")}))
    return Specials(found.get("pad"), found.get("bos"), found.get("eos"), found.get("unk"), special)


def parse(data: bytes, where: str) -> dict:
    """The JSON of a Hugging Face tokenizer file, or a UserError saying what is wrong with it."""
    try:
        desc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{where} is not a Hugging Face tokenizer.json: not JSON ({e})") from None
    if not is_hf_json(desc):
        raise UserError(f"{where} is not a Hugging Face tokenizer.json: it has no \"model\" with a \"type\"")
    if desc["model"]["type"] not in MODEL_TYPES:
        raise UserError(f"{where}: model type {desc['model']['type']!r} is not supported; "
                        f"expected one of {list(MODEL_TYPES)}")
    return desc


def _library():
    try:
        import tokenizers
    except ImportError:
        raise UserError(f"Hugging Face tokenizer files need the `tokenizers` package: {INSTALL}") from None
    return tokenizers


class HFTokenizer(Tokenizer):
    """A Hugging Face tokenizer.json. `data` is the parsed file, `raw` its exact bytes (saved as is)."""

    name = "hf"

    def __init__(self, source: str | os.PathLike | bytes):
        if isinstance(source, bytes):
            self.raw, where = source, "the given tokenizer.json bytes"
        else:
            path = Path(source)
            if not path.is_file():
                raise UserError(f"Hugging Face tokenizer file {path} does not exist; check the path")
            self.raw, where = path.read_bytes(), str(path)
        self.data = parse(self.raw, where)
        library = _library()
        try:
            self._tok = library.Tokenizer.from_str(self.raw.decode("utf-8"))
        except Exception as e:  # the Rust side raises plain Exceptions on malformed files
            raise UserError(f"{where} is not a valid Hugging Face tokenizer ({e}); pass a tokenizer.json "
                            "written by the `tokenizers` library") from None
        self._set_ids(specials(self.data), where)

    def _set_ids(self, s: Specials, where: str) -> None:
        if s.bos is None and s.eos is None:
            names = ", ".join(ROLE_NAMES["bos"] + ROLE_NAMES["eos"])
            raise UserError(f"{where} has neither a bos nor an eos token (none in its post-processor, none named "
                            f"{names}), so documents cannot be separated; add one to its added_tokens")
        self.eos_id = s.eos if s.eos is not None else s.bos
        self.bos_id = s.bos if s.bos is not None else s.eos
        self.unk_id = s.unk
        self.pad_id = next(i for i in (s.pad, s.unk, self.eos_id) if i is not None)
        top = max([*token_ids(self.data).values(), *s.special, -1]) + 1
        self.vocab_size = max(int(self._tok.get_vocab_size(with_added_tokens=True)), top)
        real_pad = [s.pad] if s.pad is not None else []
        self.special_ids = tuple(sorted({*s.special, self.bos_id, self.eos_id, *real_pad}))
        self._skip = np.asarray(sorted({*self.special_ids, self.pad_id}), dtype=np.int64)

    def encode(self, text: str) -> list[int]:
        return list(self._encode_batch([text])[0])

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        fast = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)  # no offsets: faster
        try:
            out = fast(texts, add_special_tokens=False)
        except (TypeError, UnicodeError):  # lone surrogates cannot reach the Rust side
            out = fast([_valid_unicode(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in out]

    def encode_np(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int32)

    def encode_batch_np(self, texts: Sequence[str]) -> list[np.ndarray]:
        if not texts:
            return []
        return [np.asarray(ids, dtype=np.int32) for ids in self._encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        a = a[(a >= 0) & (a < self.vocab_size) & ~np.isin(a, self._skip)]
        return self._tok.decode(a.tolist(), skip_special_tokens=True)

    def record(self) -> dict[str, Any]:
        return {"kind": "hf", "model_file": MODEL_FILE, "model_sha256": hashlib.sha256(self.raw).hexdigest()}

    def files(self) -> dict[str, bytes]:
        return {MODEL_FILE: self.raw}


def from_description(desc: dict, base: Path) -> HFTokenizer:
    """Loader for `lexi.tokenizers.register`: lexi's tokenizer.json for kind "hf" names the HF file."""
    model_file = desc.get("model_file")
    if not model_file:
        raise UserError("an hf tokenizer needs a model file: pass the path of a Hugging Face tokenizer.json "
                        "(or set config.data.tokenizer.model_file)")
    return HFTokenizer(base / Path(str(model_file)).expanduser())
