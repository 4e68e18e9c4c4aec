"""A Hugging Face tokenizer.json as data: checking the file, its token ids and which of them
are pad, bos, eos and unk. Plain JSON, no `tokenizers` package (see hf.py for the rules on
specials)."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from lexi.errors import UserError

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
