"""Corpora: contents, the deterministic document-level split, and the errors users cause."""
import json
import warnings

import ml_collections
import numpy as np
import pytest

from lexi.data.corpora import KJV, PythonCode, get_corpus
from lexi.data.corpus import in_validation
from lexi.errors import UserError


def data_cfg(**kw):
    c = ml_collections.ConfigDict({"corpus": "kjv", "files": "", "text_field": "text", "val_fraction": 0.02,
                                   "max_documents": 0, "tfds_split": "train", "tfds_validation_split": "validation",
                                   "tfds_data_dir": ""})
    c.update(kw)
    return c


@pytest.fixture(scope="module")
def kjv_split():
    c = get_corpus(data_cfg())
    return list(c.documents("train")), list(c.documents("validation"))


# ---------------------------------------------------------------- split rule


def test_in_validation_is_a_stable_hash_threshold():
    keys = [f"doc {i}" for i in range(20_000)]
    share = sum(in_validation(k, 0.1) for k in keys) / len(keys)
    assert 0.09 < share < 0.11
    assert not any(in_validation(k, 0.0) for k in keys[:1000])
    # monotone in the fraction: growing it only moves documents into validation
    assert all(in_validation(k, 0.2) for k in keys if in_validation(k, 0.1))
    # a known value, so a change of the rule (and of every cached split) cannot go unnoticed
    assert [i for i in range(300) if in_validation(f"doc {i}", 0.05)] == [45, 68, 108, 122, 138, 154, 195]
    assert in_validation("Genesis 1", 0.02) is False


# ---------------------------------------------------------------- kjv


def test_kjv_chapters_and_split(kjv_split):
    train, val = kjv_split
    assert len(train) + len(val) == 1189
    assert 15 <= len(val) <= 40  # 21 chapters at val_fraction 0.02
    assert not set(train) & set(val)
    genesis1 = train[0]
    assert genesis1.startswith("In the beginning God created the heaven and the earth.\nAnd the earth was")
    assert genesis1.count("\n") == 30  # 31 verses, no verse numbers
    assert train[-1].endswith("Amen.")  # Revelation 22 is last
    assert sum(map(len, train)) + sum(map(len, val)) > 4_000_000


def test_kjv_split_is_deterministic_and_follows_the_keys(kjv_split):
    train, val = kjv_split
    again = KJV()
    assert list(again.documents("validation")) == val
    keys = [k for k, _ in again._items()]
    assert len([k for k in keys if in_validation(k, 0.02)]) == len(val)
    bigger = list(KJV(val_fraction=0.05).documents("validation"))
    assert set(val) < set(bigger)


def test_max_documents_caps_each_split():
    c = KJV(max_documents=5)
    assert len(list(c.documents("train"))) == 5
    assert len(list(c.documents("validation"))) == 5
    assert c.fingerprint() != KJV().fingerprint()


def test_fingerprint_changes_with_settings():
    assert KJV().fingerprint() == KJV().fingerprint()
    assert KJV(val_fraction=0.05).fingerprint() != KJV().fingerprint()


# ---------------------------------------------------------------- python_code


def test_python_code_lists_the_stdlib():
    c = get_corpus(data_cfg(corpus="python_code"))
    files = c.files()
    rels = [r for r, _ in files]
    assert len(files) > 500 and rels == sorted(rels)
    assert "os.py" in rels and not any("site-packages" in r for r in rels)


def test_python_code_documents(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "a.py").write_text("import os\n")
    (tmp_path / "pkg" / "b.py").write_bytes(b"x = '\xff\xfe'\n")  # invalid UTF-8
    (tmp_path / "pkg" / "__init__.py").write_text("")  # empty: no document
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "c.py").write_text("excluded = True\n")
    c = PythonCode(root=tmp_path, val_fraction=0.0)
    assert list(c.documents("train")) == ["import os\n", "x = '\ufffd\ufffd'\n"]
    assert c.replaced_count == 2
    with pytest.raises(UserError, match="validation split of corpus 'python_code' has no documents"):
        list(c.documents("validation"))


# ---------------------------------------------------------------- text_files


def make_files(root):
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "one.txt").write_text("First document.\nTwo lines.")
    (root / "sub" / "deep" / "two.txt").write_text("Second document.")
    rows = [{"text": f"record {i}", "id": i} for i in range(40)]
    (root / "sub" / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return rows


def test_text_files_txt_and_jsonl(tmp_path):
    rows = make_files(tmp_path)
    cfg = data_cfg(corpus="text_files", files=f"{tmp_path}/*.txt, {tmp_path}/sub/**/*", val_fraction=0.2)
    c = get_corpus(cfg)
    train, val = list(c.documents("train")), list(c.documents("validation"))
    expected = {"First document.\nTwo lines.", "Second document."} | {r["text"] for r in rows}
    assert set(train) | set(val) == expected and len(train) + len(val) == 42
    assert not set(train) & set(val) and len(val) >= 1
    assert list(get_corpus(cfg).documents("validation")) == val
    assert c.fingerprint() == get_corpus(cfg).fingerprint()


def test_text_files_custom_field_and_missing_field(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"body": "hello"}) + "\n" + json.dumps({"text": "no body"}) + "\n")
    c = get_corpus(data_cfg(corpus="text_files", files=str(p), text_field="body", val_fraction=0.0))
    with pytest.raises(UserError, match=r"d\.jsonl:2: no 'body' field \(found \['text'\]\)"):
        list(c.documents("train"))
    p.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(UserError, match=r"d\.jsonl:2: not valid JSON"):
        list(get_corpus(data_cfg(corpus="text_files", files=str(p), val_fraction=0.0)).documents("train"))


def test_text_files_bad_globs_and_empty_files(tmp_path):
    with pytest.raises(UserError, match="matches no files"):
        get_corpus(data_cfg(corpus="text_files", files=f"{tmp_path}/*.txt"))
    with pytest.raises(UserError, match="does not exist"):
        get_corpus(data_cfg(corpus="text_files", files=f"{tmp_path}/missing.txt"))
    with pytest.raises(UserError, match="needs --config.data.files"):
        get_corpus(data_cfg(corpus="text_files", files=""))
    (tmp_path / "empty.txt").write_text("  \n")
    c = get_corpus(data_cfg(corpus="text_files", files=f"{tmp_path}/*.txt"))
    with pytest.raises(UserError, match="empty.txt is empty"):
        list(c.documents("train"))


def test_text_files_invalid_utf8_is_replaced_with_a_warning(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 ok \xff")
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "na\xefve"}\n')
    c = get_corpus(data_cfg(corpus="text_files", files=f"{tmp_path}/bad.*", val_fraction=0.0))
    with pytest.warns(UserWarning) as caught:
        docs = list(c.documents("train"))
    messages = sorted(str(w.message) for w in caught)
    assert "bad.jsonl: replaced 1 invalid UTF-8" in messages[0] and "bad.txt: replaced 2 invalid UTF-8" in messages[1]
    assert sorted(docs) == ["caf\ufffd ok \ufffd", "na\ufffdve"]
    assert c.replaced_count == 3


# ---------------------------------------------------------------- tfds and get_corpus


def test_tfds_missing_dataset_is_a_user_error(tmp_path):
    c = get_corpus(data_cfg(corpus="tfds:lm1b", tfds_data_dir=str(tmp_path)))
    with pytest.raises(UserError, match=rf"TFDS dataset 'lm1b' is not available in {tmp_path}: .*tfds build lm1b"):
        list(c.documents("train"))
    with pytest.raises(UserError, match="not available"):
        get_corpus(data_cfg(corpus="tfds:no_such_dataset_xyz", tfds_data_dir=str(tmp_path))).fingerprint()


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    """A real array_record TFDS dataset with train and test splits (no validation)."""
    import tensorflow_datasets as tfds

    class LexiTinyText(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "n": tfds.features.Scalar(dtype=np.int32)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 300), "test": self._generate_examples(1000, 1010)}

        def _generate_examples(self, lo, hi):
            for i in range(lo, hi):
                yield i, {"text": f"document {i} \u00fc", "n": i}

    d = tmp_path_factory.mktemp("tfds")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LexiTinyText(data_dir=str(d), file_format="array_record").download_and_prepare()
    return d


def test_tfds_reads_a_prepared_dataset(tiny_tfds):
    cfg = data_cfg(corpus="tfds:lexi_tiny_text", tfds_data_dir=str(tiny_tfds))
    c = get_corpus(cfg)
    train = list(c.documents("train"))
    assert len(train) == 300 and set(train) == {f"document {i} \u00fc" for i in range(300)}
    val = list(c.documents("validation"))  # no "validation" split: falls back to "test"
    assert sorted(val) == sorted(f"document {i} \u00fc" for i in range(1000, 1010))
    assert c.fingerprint() == get_corpus(cfg).fingerprint()
    capped = get_corpus(data_cfg(corpus="tfds:lexi_tiny_text", tfds_data_dir=str(tiny_tfds), max_documents=7))
    assert list(capped.documents("train")) == train[:7]
    wrong = get_corpus(data_cfg(corpus="tfds:lexi_tiny_text", tfds_data_dir=str(tiny_tfds), text_field="body"))
    with pytest.raises(UserError, match=r"no feature 'body' \(it has \['n', 'text'\]\)"):
        list(wrong.documents("train"))


def test_get_corpus_errors():
    with pytest.raises(UserError, match="corpus 'bible' is unknown"):
        get_corpus(data_cfg(corpus="bible"))
    with pytest.raises(UserError, match="val_fraction must be in"):
        get_corpus(data_cfg(val_fraction=1.5))
    with pytest.raises(ValueError, match="split must be"):
        list(KJV().documents("test"))


# ---------------------------------------------------------------- mixture


def test_mixture_keeps_each_corpus_at_its_share_of_characters(tmp_path):
    """Documents interleave so every prefix stays near the weights; the stream ends when a
    corpus runs out; each corpus splits by its own rule."""
    (tmp_path / "prose").mkdir()
    (tmp_path / "code").mkdir()
    for i in range(60):
        (tmp_path / "prose" / f"{i:02d}.txt").write_text(f"p{i:02d}" + "p" * 97)
        (tmp_path / "code" / f"{i:02d}.txt").write_text(f"c{i:02d}" + "c" * 47)
    # text_files reads config.data.files, so each part is its own text_files corpus through a glob per part
    prose = get_corpus(data_cfg(corpus="text_files", files=f"{tmp_path}/prose/*.txt", val_fraction=0.1))
    code = get_corpus(data_cfg(corpus="text_files", files=f"{tmp_path}/code/*.txt", val_fraction=0.1))
    from lexi.data.corpora import Mixture

    mix = Mixture([(prose, 0.75), (code, 0.25)])
    docs = list(mix.documents("train"))
    n_prose = len(list(prose.documents("train")))
    assert sum(d[0] == "p" for d in docs) == n_prose  # prose ran out first and ended the stream
    chars = np.cumsum([[len(d) * (d[0] == "p"), len(d) * (d[0] == "c")] for d in docs], axis=0)
    share = chars[:, 0] / chars.sum(1)
    assert np.all(np.abs(share[10:] - 0.75) < 0.05)
    val = list(mix.documents("validation"))
    assert val and set(val) <= set(prose.documents("validation")) | set(code.documents("validation"))
    assert mix.fingerprint() != Mixture([(prose, 0.5), (code, 0.5)]).fingerprint()


def test_mixture_config_and_its_errors():
    c = get_corpus(data_cfg(corpus="mixture", mixture="kjv:4, python_code:1"))
    assert [(p.name, w) for p, w in c.parts] == [("kjv", 0.8), ("python_code", 0.2)]
    for bad, match in (("kjv:1", "at least two"), ("kjv", "corpus:weight"),
                       ("kjv:0.5,python_code:-1", "positive weight"), ("kjv:1,mixture:1", "another mixture"),
                       ("kjv:1,nope:1", "unknown")):
        with pytest.raises(UserError, match=match):
            get_corpus(data_cfg(corpus="mixture", mixture=bad))
    with pytest.raises(UserError, match="needs config.data.mixture"):
        get_corpus(data_cfg(corpus="mixture"))
    with pytest.raises(UserError, match="corpus=mixture"):
        get_corpus(data_cfg(corpus="kjv", mixture="kjv:1,python_code:1"))
