"""`lexi sample` on a tiny trained run: seeded, and greedy where it says so."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lexi import cli
from lexi.inference import load_for_inference, until_end_of_text
from lexi.model.lm import LanguageModel

PROMPT = "And God said"
MAX_NEW = 24
RULE = "-" * 40


def _sample(run, capsys, *flags) -> str:
    """The continuation `lexi sample` prints (one sample)."""
    assert cli.main(["sample", "--workdir", str(run), "--prompt", PROMPT, "--max-new", str(MAX_NEW), *flags]) == 0
    out = capsys.readouterr().out
    assert out.startswith(PROMPT) and out.endswith(f"\n{RULE}\n"), out
    return out[len(PROMPT):-len(RULE) - 2]


@pytest.fixture(scope="module")
def greedy(trained_run):
    """The run's greedy continuation, one full causal forward pass (no cache) per new token."""
    loaded = load_for_inference(trained_run)
    model, tok = loaded.model, loaded.tokenizer
    assert model.embedding.context(jax.random.key(0), jnp.int32(0), jnp.arange(1)) is None  # no random context
    logits = jax.jit(lambda v, x: model.apply(v, x, None, method=LanguageModel.logits))
    ids = [tok.bos_id] + tok.encode(PROMPT)
    n = len(ids)
    buf = np.full((1, n + MAX_NEW), tok.pad_id, np.int32)  # one shape, one compile; causal: padding is unseen
    buf[0, :n] = ids
    for i in range(n, n + MAX_NEW):
        buf[0, i] = int(np.argmax(np.asarray(logits(loaded.variables, buf)[0, i - 1])))
    return tok.decode(until_end_of_text(buf[0, n:], tok))


def test_seeded_samples_are_reproducible(trained_run, capsys):
    """Breaks if sampling ignores --seed or draws from an unseeded source."""
    first = _sample(trained_run, capsys, "--temperature", "1.0", "--seed", "3")
    assert _sample(trained_run, capsys, "--temperature", "1.0", "--seed", "3") == first
    assert _sample(trained_run, capsys, "--temperature", "1.0", "--seed", "4") != first


def test_temperature_zero_is_greedy(trained_run, capsys, greedy):
    """Breaks if temperature 0 samples instead of taking the most likely token."""
    assert _sample(trained_run, capsys, "--temperature", "0", "--seed", "1") == greedy
    assert _sample(trained_run, capsys, "--temperature", "0", "--seed", "2") == greedy


def test_top_k_one_is_greedy(trained_run, capsys, greedy):
    """Breaks if --top-k does not restrict the draw to the k most likely tokens."""
    hot = ["--temperature", "2.0", "--top-k", "1"]
    assert _sample(trained_run, capsys, *hot, "--seed", "1") == greedy
    assert _sample(trained_run, capsys, *hot, "--seed", "2") == greedy


def test_sampling_stops_at_the_end_of_the_text(trained_run, capsys, monkeypatch):
    """Breaks if `lexi sample` prints on past eos or past the bos that starts a next document,
    or if --max-new-tokens (the Hugging Face name) is not --max-new."""
    import lexi.generate

    tok = load_for_inference(trained_run).tokenizer
    a, b, c = tok.encode("abc")
    rows = {"eos": [a, b, tok.eos_id, c], "bos": [a, tok.bos_id, b, c], "none": [a, b, c, a]}
    for stop, row in rows.items():
        monkeypatch.setattr(lexi.generate, "generate", lambda *args, row=row, **kw: jnp.asarray([row], jnp.int32))
        assert cli.main(["sample", "--workdir", str(trained_run), "--prompt", PROMPT, "--max-new-tokens", "4"]) == 0
        expected = {"eos": "ab", "bos": "a", "none": "abca"}[stop]
        assert capsys.readouterr().out == f"{PROMPT}{expected}\n{RULE}\n"
