"""config.data.streaming_skip_bad_lines: a bad .jsonl line stops a streaming run with its message
(the default) or is skipped with a warning that carries a running count."""
import json
import logging

import numpy as np
import pytest

from lexi import tokenizers
from lexi.data.corpora import get_corpus
from lexi.data.shards import process_shards
from lexi.data.streaming import StreamingBatches, StreamSettings, validation_tokens
from lexi.errors import UserError
from test_streaming import data_cfg

TOK = tokenizers.load("char")
BAD = ['{oops', '[1, 2]', '{"text": 3}', '{"body": "no text field"}']


def settings():
    return StreamSettings(seq_len=16, global_batch_size=2, seed=0, shuffle=False)


def write(path, good, bad=BAD):
    lines = [json.dumps({"text": g}) for g in good]
    for i, b in enumerate(bad):  # spread the bad lines among the good ones
        lines.insert(1 + 3 * i, b)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def corpus(files, skip, **kw):
    return get_corpus(data_cfg(files=files, input_pipeline="streaming", streaming_skip_bad_lines=skip, **kw))


def test_a_bad_line_stops_the_run_by_default(tmp_path):
    files = write(tmp_path / "b.jsonl", [f"document {i} " * 3 for i in range(20)])
    with pytest.raises(UserError, match=r"b\.jsonl:2: not valid JSON"):
        StreamingBatches(corpus(files, False, val_fraction=0.0), TOK, settings()).batch_at(0)


def test_bad_lines_are_skipped_with_a_running_count(tmp_path, caplog):
    good = [f"document {i} " * 3 for i in range(20)]
    files = write(tmp_path / "b.jsonl", good)
    c = corpus(files, True, val_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="lexi"):
        docs = [d for d, _, _ in process_shards(c, "train", 0, 1)[0].read()]
    assert docs == good
    warned = [r.getMessage() for r in caplog.records if "skipped a bad line" in r.getMessage()]
    assert len(warned) == 4 and "b.jsonl:2: not valid JSON" in warned[0]
    assert [w.startswith(f"skipped a bad line ({n} so far") for n, w in enumerate(warned, 1)] == [True] * 4
    assert "no 'text' field" in warned[3] and c.bad_lines.count == 4
    batch = StreamingBatches(c, TOK, settings()).batch_at(0)  # the stream goes on past them
    assert TOK.decode(batch["inputs"][0]).startswith("document 0")


def test_skipping_applies_to_validation_and_only_to_streaming(tmp_path):
    files = write(tmp_path / "b.jsonl", [f"document {i} " * 3 for i in range(200)])
    val = validation_tokens(corpus(files, True, val_fraction=0.2), TOK, 5)
    assert int((val == TOK.bos_id).sum()) == 5
    cached = get_corpus(data_cfg(files=files, streaming_skip_bad_lines=True))  # input_pipeline=cached: no skipping
    with pytest.raises(UserError, match="not valid JSON"):
        list(cached.documents("train"))


def test_a_file_of_only_bad_lines_is_an_error(tmp_path):
    files = write(tmp_path / "all_bad.jsonl", [], bad=BAD)
    with pytest.raises(UserError, match=r"all_bad\.jsonl: all 4 line\(s\) are bad and were skipped; check "
                                        r"config\.data\.text_field"):
        StreamingBatches(corpus(files, True, val_fraction=0.0), TOK, settings()).batch_at(0)


def test_a_run_stopped_by_a_bad_line_resumes_with_skipping(tmp_path):
    good = [f"document {i} " * 3 for i in range(40)]
    files = write(tmp_path / "b.jsonl", good, bad=[])
    strict = StreamingBatches(corpus(files, False, val_fraction=0.0), TOK, settings())
    want = [strict.batch_at(s) for s in range(6)]
    skipping = StreamingBatches(corpus(files, True, val_fraction=0.0), TOK, settings())
    skipping.restore(3, json.loads(json.dumps(strict.state_at(3))))  # the setting is not part of the stream's identity
    np.testing.assert_array_equal(skipping.batch_at(3)["inputs"], want[3]["inputs"])


def test_the_setting_is_in_the_base_config():
    from lexi.config import base_config

    assert base_config().data.streaming_skip_bad_lines is False
