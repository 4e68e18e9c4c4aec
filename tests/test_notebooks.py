"""The colab/ notebooks: generated from colab/src, saved clean, and every one runs top to bottom.

Each notebook is executed headlessly in a python3 kernel of this interpreter, in smoke mode
(LEXI_NOTEBOOK_SMOKE=1: the same cells with smaller counts), on the CPU, with its run
directories in a temporary folder; its last cell writes summary.json there, whose numbers
are checked here.
"""
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import pytest
from xla_flags import xla_flags

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the test extra (nbformat, nbclient, ipykernel)")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
COLAB = ROOT / "colab"


def _build_module():
    spec = importlib.util.spec_from_file_location("colab_build", COLAB / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build_module()
NOTEBOOKS = [build.target(s).name for s in build.sources()]


def test_six_notebooks_match_their_sources_and_carry_no_outputs():
    assert len(NOTEBOOKS) == 6 and NOTEBOOKS[0].startswith("01_") and NOTEBOOKS[-1].startswith("06_")
    for src in build.sources():
        saved = build.target(src)
        assert saved.exists(), f"{saved.name} is missing: run python colab/build.py"
        assert saved.read_text(encoding="utf-8") == build.build(src), \
            f"{saved.name} differs from colab/src/{src.name}: run python colab/build.py"
        nb = nbformat.read(saved, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code), saved.name
        assert nb.metadata.kernelspec.name == "python3"
        assert "LEXI_SOURCE" in code[0].source and "default_backend" in code[0].source  # install + runtime first


def test_kernel_runs_this_interpreter():
    """nbclient starts kernel "python3"; its command must be this interpreter (jupyter_client
    turns the spec's bare `python` into sys.executable), never another Python on the PATH."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] in ("python", "python3", sys.executable), spec.argv
    assert KernelManager(kernel_name="python3").format_kernel_cmd()[0] == sys.executable


def _finite(*values):
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _check_01(s):
    lx, std = s["lexinvariant"], s["standard"]
    assert _finite(*lx.values(), *std.values())
    assert 0.9 < lx["cipher_plain_ratio"] < 1.1  # blind to the cipher
    assert std["mean_loss"] < lx["mean_loss"] < 6.5


def _check_02(s):
    assert 0.9 < s["paragraph_ratio"]["lexinvariant"] < 1.1
    assert s["paragraph_ratio"]["standard"] > 1.05  # the cipher hurts the standard model
    for family in ("lexinvariant", "standard"):
        curve = s["key_precision"][family]
        assert curve and all(0.0 <= p <= 1.0 for p in curve)
        assert 0 < s["voted_letters"][family] <= 26 and 0 <= s["recovered_letters"][family] <= 26
    assert len(s["window_starts"]) == len(s["key_precision"]["standard"]) == len(s["frequency_baseline"])
    assert 0 <= s["frequency_recovered_letters"] <= 26


def _check_03(s):
    assert set(s["scores"]) == {"lexinvariant", "standard"}
    for scores in s["scores"].values():
        assert set(scores) == {"lookup", "permutation"}
        assert all(0.0 <= v <= 1.0 for task in scores.values() for v in task.values())
    assert all("->" in p for p in s["example_prompts"])
    assert s["examples"] >= 1


def _check_04(s):
    assert s["table_shape"] == [65536, 1024] and s["duplicates"] == 0
    assert len(s["neighbours"]) >= 3 and all(len(v) == 5 for v in s["neighbours"].values())
    assert _finite(s["val_loss"]["glyph"], s["val_loss"]["trainable"])
    assert 0 < s["val_loss"]["glyph"] < math.log(65536) + 1


def _check_05(s):
    for target, r in s["targets"].items():
        assert set(r["bits_per_byte"]) == {"original", "hypernet", "fvt", "lexical", "random", "tokenadapt"}
        assert _finite(*r["bits_per_byte"].values()) and all(v > 0 for v in r["bits_per_byte"].values())
    assert s["targets"]["byte"]["tokens_per_byte"] == pytest.approx(1.0, abs=0.01)
    assert s["hypernet_rows"] == s["target_vocab_size"] == s["targets"]["bpe"]["vocab_size"]  # a row per BPE id
    assert _finite(s["moved_bits_per_byte"])


def _check_06(s):
    assert s["devices"] == 8 and s["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    assert s["sharded_params"] >= 1 and s["param_rows"] >= s["sharded_params"]
    assert _finite(s["train_loss"])
    if importlib.util.find_spec("libtpu") is None:
        assert s["aot"] is None
    else:  # CI installs the tpu extra: the pod compile must have run
        assert s["aot"]["num_devices"] == 4 and s["aot"]["mesh"] == {"data": 1, "fsdp": 2, "tensor": 2}
        assert 0 < s["aot"]["bytes_per_device"]["params"] < s["aot"]["bytes_per_device"]["total"] and s["aot"]["fits"]


CHECKS = {"01": _check_01, "02": _check_02, "03": _check_03, "04": _check_04, "05": _check_05, "06": _check_06}


def _smoke_env(monkeypatch, work):
    monkeypatch.setenv("LEXI_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("LEXI_NOTEBOOK_WORKDIR", str(work))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XLA_FLAGS", xla_flags())  # the suite's (tests/xla_flags.py), no simulated devices
    monkeypatch.delenv("LEXI_SOURCE", raising=False)


def _execute(nb, cwd):
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(cwd)}})
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


@pytest.mark.parametrize("name", NOTEBOOKS)
@pytest.mark.slow
def test_notebook_runs_in_smoke_mode(name, tmp_path, cache_dir, monkeypatch):
    work = tmp_path / "work"
    _smoke_env(monkeypatch, work)
    nb = nbformat.read(COLAB / name, as_version=4)
    seconds = _execute(nb, tmp_path)
    nbformat.write(nb, tmp_path / name)  # the executed copy, outputs and all, to look at when a check fails
    print(f"{name}: executed in {seconds:.1f} s ({tmp_path / name})")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images or name.startswith("06_"), "no plot was shown"  # 06 prints tables, it plots nothing
    summary = json.loads((work / "summary.json").read_text())
    assert summary["python"] == sys.executable and summary["backend"] == "cpu"
    CHECKS[name[:2]](summary)
    assert not list(tmp_path.glob("lexi_src")), "the notebook cloned lexi although it is installed"


def test_pod_compile_without_libtpu_prints_a_note_and_skips(tmp_path, cache_dir, monkeypatch):
    """Notebook 6's compile cell on a runtime without libtpu (hidden here): a note, no error."""
    _smoke_env(monkeypatch, tmp_path / "work")
    full = nbformat.read(next(COLAB.glob("06_*.ipynb")), as_version=4)
    code = [c for c in full.cells if c.cell_type == "code"]
    pick = [code[0]] + [c for c in code if "def mesh_for" in c.source or "compile_for_topology" in c.source]
    assert len(pick) == 3
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys\nsys.modules['libtpu'] = None"), *pick])
    _execute(nb, tmp_path)
    out = "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    assert "libtpu is not installed: skipping the pod compile" in out
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "error"]


def test_notebook_docs_link_to_files_that_exist():
    """colab/README.md lists every notebook, and the relative links there and in docs/concepts.md resolve."""
    import re

    readme = (COLAB / "README.md").read_text(encoding="utf-8")
    assert all(f"]({name})" in readme for name in NOTEBOOKS)
    for doc in (COLAB / "README.md", ROOT / "docs" / "concepts.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"
