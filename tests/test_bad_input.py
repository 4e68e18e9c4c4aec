"""Every mistake a user can make with a config, data or a run directory gets one clear
message, a non-zero exit code, no traceback, and leaves what is already saved untouched.

CASES is the table docs/errors.md documents; a test checks the two agree.
"""
import hashlib
import json
import logging
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from lexi import cli, commands
from lexi.errors import UserError

TINY = ["train", "--config", "configs/standard.py:tiny", "--config.train.progress_bar=false"]


@dataclass
class Case:
    id: str
    argv: Callable[[Path, Path], list]  # (tmp dir, trained run) -> lexi arguments
    message: str  # regex the one-line error must match


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def _text_files(tmp: Path, files: str, *extra) -> list:
    return TINY + ["--workdir", str(tmp / "run"), "--config.data.corpus=text_files", f"--config.data.files={files}",
                   *extra]


CASES = [
    # config
    Case("config-missing-file", lambda t, r: ["train", "--config", "configs/nope.py", "--workdir", str(t / "run")],
         r"config file 'configs/nope.py' does not exist"),
    Case("config-unknown-key", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.train.stepz=5"],
         r"unknown field 'stepz'"),
    Case("config-unknown-section", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.trian.steps=5"],
         r"no config section 'trian'"),
    Case("config-wrong-type", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.train.steps=many"],
         r"cannot parse 'many' as a int"),
    Case("config-negative-steps", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.train.steps=-5"],
         r"config.train.steps must be positive, got -5"),
    Case("config-heads-do-not-divide-width",
         lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.model.num_heads=3", "--config.model.head_dim=0"],
         r"num_heads \(3\) must divide d_model \(64\)"),
    Case("config-bad-mixture", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.data.corpus=mixture",
                                                    "--config.data.mixture=kjv"],
         r"config.data.mixture item 'kjv' should look like corpus:weight"),
    Case("config-unknown-init-scale",
         lambda t, r: ["train", "--config", "configs/lexinvariant.py:tiny", "--workdir", str(t / "run"),
                       "--config.embedding.init_scale=twos"],
         r"config.embedding.init_scale must be one of \('ones', 'signs', 'constant'\), got 'twos'"),
    Case("config-unknown-projection",
         lambda t, r: ["train", "--config", "configs/glyph.py:tiny_binary", "--workdir", str(t / "run"),
                       "--config.embedding.projection=umap"],
         r"config.embedding.projection 'umap' is unknown; choose one of "
         r"\('pca', 'random_orthogonal', 'pca_used', 'pca_used_whitened'\)"),
    Case("config-unknown-readout-ids",
         lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.embedding.readout_ids=used"],
         r"config.embedding.readout_ids must be one of \('all', 'train_split'\), got 'used'"),
    Case("config-readout-ids-family",
         lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.embedding.kind=regularized",
                              "--config.embedding.readout_ids=train_split"],
         r"config.embedding.readout_ids='train_split' does not apply to kind 'regularized': it permutes tokens "
         r"over the whole vocabulary"),
    Case("config-mesh-vs-devices", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.mesh.shape.data=3"],
         r"config.mesh.shape .* uses 3 devices, but 1 are available"),
    Case("resume-different-tokenizer",
         lambda t, r: TINY + ["--workdir", str(r), "--config.data.tokenizer.kind=byte"],
         r"holds a checkpoint of a different model; changed: .*tokenizer"),
    Case("resume-different-model", lambda t, r: TINY + ["--workdir", str(r), "--config.model.d_model=32"],
         r"holds a checkpoint of a different model; changed: .*d_model"),
    # data
    Case("data-missing-file", lambda t, r: _text_files(t, str(t / "absent.txt")),
         r"config.data.files: .*absent.txt does not exist"),
    Case("data-glob-matches-nothing", lambda t, r: _text_files(t, str(t / "nothing" / "*.txt")),
         r"the glob .* matches no files"),
    Case("data-empty-file", lambda t, r: _text_files(t, str(_write(t / "empty.txt", "")) + "," + str(
        _write(t / "other.txt", "text " * 100))), r"empty.txt is empty"),
    Case("data-shorter-than-a-sequence", lambda t, r: _text_files(t, str(_write(t / "short.txt", "In the beginning"))),
         r"fewer than one sequence"),
    Case("data-jsonl-without-text-field",
         lambda t, r: _text_files(t, str(_write(t / "d.jsonl", json.dumps({"body": "words " * 200}) + "\n"))),
         r"d.jsonl:1: no 'text' field \(found \['body'\]\)"),
    Case("data-jsonl-not-json", lambda t, r: _text_files(t, str(_write(t / "bad.jsonl", "{not json}\n"))),
         r"bad.jsonl:1: not valid JSON"),
    Case("data-tfds-not-available", lambda t, r: TINY + ["--workdir", str(t / "run"),
                                                         "--config.data.corpus=tfds:no_such_dataset_xyz",
                                                         f"--config.data.tfds_data_dir={t / 'tfds'}"],
         r"TFDS dataset 'no_such_dataset_xyz'"),
    Case("data-character-outside-corpus-chars",  # each document has its own character, so validation has new ones
         lambda t, r: _text_files(t, str(_write(t / "d.jsonl", "".join(
             json.dumps({"text": f"{chr(0x100 + i)} words and words {i} " * 12}) + "\n" for i in range(200)))),
             "--config.data.tokenizer.kind=corpus_chars"),
         r"the validation split of corpus 'text_files': this text has 1 character\(s\) outside the corpus_chars "
         r"vocabulary \(\d+ characters of the train split\): '.' \(U\+01[0-9A-F]{2}\)"),
    Case("data-unknown-corpus", lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.data.corpus=wiki"],
         r"config.data.corpus 'wiki' is unknown"),
    Case("tokenizer-file-is-not-a-tokenizer",
         lambda t, r: TINY + ["--workdir", str(t / "run"), "--config.data.tokenizer.kind=sentencepiece",
                              f"--config.data.tokenizer.model_file={_write(t / 'fake.model', 'not a model')}"],
         r"fake.model is not a SentencePiece model"),
    # eval and sampling
    Case("eval-no-checkpoint", lambda t, r: ["eval", "--workdir", str(t)],
         r"is not a lexi run directory \(no config.json\)"),
    Case("eval-run-without-checkpoint",
         lambda t, r: ["eval", "--workdir",
                       str(_write(t / "run" / "config.json", (r / "config.json").read_text()).parent)],
         r"has no checkpoint yet; train it with `lexi train` first"),
    Case("eval-empty-text-file", lambda t, r: ["eval", "--workdir", str(r), "--suite", "perplexity",
                                               "--text-file", str(_write(t / "empty.txt", ""))],
         r"--text-file .*empty.txt is empty"),
    Case("eval-missing-text-file", lambda t, r: ["eval", "--workdir", str(r), "--text-file", str(t / "gone.txt")],
         r"--text-file .*gone.txt does not exist"),
    Case("eval-unknown-suite", lambda t, r: ["eval", "--workdir", str(r), "--suite", "perplexity,vibes"],
         r"unknown suite\(s\) \['vibes'\]"),
    Case("eval-prompt-does-not-fit", lambda t, r: ["eval", "--workdir", str(r), "--suite", "reasoning",
                                                   "--reasoning-offset", "120"],
         r"lookup: bos, 120 tokens of text before the prompt, the prompt and its answer need \d+ positions, but the "
         r"model's context is 128"),
    Case("eval-probe-pool-too-small",
         lambda t, r: ["eval", "--workdir", str(r), "--suite", "cipher", "--probe-pool", "1"],
         r"--probe-pool must be at least 2 windows"),
    Case("eval-mc-without-file", lambda t, r: ["eval", "--workdir", str(r), "--suite", "mc"],
         r"the mc suite needs --mc-file questions.jsonl"),
    Case("glyphs-tokenizer-not-a-tokenizer",
         lambda t, r: ["glyphs", "--tokenizer", str(_write(t / "tok.json", '{"hello": 1}')), "--out", str(t / "g.npz")],
         r"tok.json is not a lexi tokenizer file|tok.json is not a tokenizer"),
    Case("sample-no-checkpoint", lambda t, r: ["sample", "--workdir", str(t / "nowhere"), "--prompt", "x"],
         r"is not a lexi run directory"),
    Case("compare-untrained-run", lambda t, r: ["compare", str(t), "--out", str(t / "cmp")],
         r"has neither eval/results.json nor metrics.jsonl; train it with `lexi train` or evaluate it"),
]


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_message(case, tmp_path, trained_run, capsys, cache_dir):
    argv = case.argv(tmp_path, trained_run)
    before = _tree_digest(trained_run)
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [l for l in err.splitlines() if l.startswith("lexi: error: ")]
    assert len(lines) == 1 and re.search(case.message, lines[0]), err
    assert "Traceback" not in err
    assert _tree_digest(trained_run) == before, "a mistake changed the saved run"


def test_invalid_utf8_is_replaced_and_counted(tmp_path, capsys, cache_dir):
    lines = [json.dumps({"text": f"Verse {i}: and God saw the light, that it was good. " * 4}).encode()
             for i in range(60)]
    lines[3] = lines[3].replace(b"light", b"li\xffght\xc3", 1)  # two invalid UTF-8 sequences in one line
    f = _write(tmp_path / "bad.jsonl", b"\n".join(lines) + b"\n")
    with pytest.warns(UserWarning, match=r"bad.jsonl: replaced 2 invalid UTF-8 sequence"):
        rc = cli.main(_text_files(tmp_path, str(f), "--config.train.steps=2", "--config.data.seq_len=64",
                                  "--config.data.val_fraction=0.2"))
    assert rc == 0, capsys.readouterr().err
    # how the CLI prints a warning: one line, no source excerpt (test_main_puts_back_what_it_replaces: while it runs)
    line = cli._one_line_warning("bad.jsonl: replaced 2", UserWarning, "x.py", 1)
    assert line == "lexi: warning: bad.jsonl: replaced 2\n"


@pytest.mark.parametrize("outcome", ["done", "user-error", "crash"])
def test_main_puts_back_what_it_replaces(outcome, monkeypatch):
    """While a command runs, main prints warnings in one line and drops unraisable-exception and absl
    tracebacks; on every way out it restores the previous settings. Breaks if they leak into the
    Python session that called main (a notebook, the rest of the test run)."""
    absl = logging.getLogger("absl")
    during = {}

    def command(args, extra):
        during.update(format=warnings.formatwarning, hook=sys.unraisablehook, filters=list(absl.filters))
        if outcome == "user-error":
            raise UserError("bad")
        if outcome == "crash":
            raise RuntimeError("boom")
        return 0

    monkeypatch.setattr(commands, "sample", command)
    before = (warnings.formatwarning, sys.unraisablehook, list(absl.filters))
    argv = ["sample", "--workdir", "w", "--prompt", "p"]
    if outcome == "crash":
        with pytest.raises(RuntimeError, match="boom"):
            cli.main(argv)
    else:
        assert cli.main(argv) == {"done": 0, "user-error": 2}[outcome]
    assert during["format"] is cli._one_line_warning and during["hook"] is cli._ignore_unraisable
    assert cli._drop_traceback in during["filters"]
    assert (warnings.formatwarning, sys.unraisablehook, list(absl.filters)) == before


def test_every_case_is_in_the_docs_table():
    doc = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"docs/errors.md lacks {missing}"


def test_real_process_exit_code_and_debug_traceback(tmp_path):
    cmd = [sys.executable, "-m", "lexi.cli", *TINY, "--workdir", str(tmp_path / "run"), "--config.train.steps=-1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip() == "lexi: error: config.train.steps must be positive, got -1"
    p = subprocess.run([sys.executable, "-m", "lexi.cli", "--debug", *cmd[3:]], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and "Traceback" in p.stderr and "UserError" in p.stderr
