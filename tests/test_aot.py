"""`lexi compile`: the real train step compiled for a TPU pod topology on this CPU (libtpu)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from lexi import aot
from lexi.errors import UserError

ROOT = os.path.join(os.path.dirname(__file__), "..")
# pip install 'lexi[tpu]' (as .ci/run does); without it skipped, or failed in CI (tests/conftest.py)
needs_libtpu = pytest.mark.needs(importlib.util.find_spec("libtpu") is not None,
                                 "libtpu is not installed (pip install 'lexi[tpu]'): AOT compile untested")


def _compile(*args):
    return subprocess.run([sys.executable, "-m", "lexi.cli", "compile", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))


@needs_libtpu
@pytest.mark.slow
def test_compile_reports_memory_and_flops_for_a_pod(tmp_path):
    sharded = ["--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=2", "--config.mesh.shape.tensor=2"]
    p = _compile("--config", "configs/lexinvariant.py:tiny", "--topology", "v5e:2x2", *sharded)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["num_devices"] == 4 and r["device_kind"].startswith("TPU v5")
    assert r["mesh"] == {"data": 1, "fsdp": 2, "tensor": 2}
    b = r["bytes_per_device"]
    assert {"params", "optimizer", "temporary", "total"} <= set(b)
    whole = r["params"] * 4  # float32 parameters
    assert 0 < b["params"] < whole / 2  # fsdp x tensor: each device holds a fraction of every matrix
    assert b["optimizer"] > b["params"]  # AdamW: two slots per parameter, sharded the same way
    assert b["total"] >= b["params"] + b["optimizer"]
    assert r["device_memory_bytes"] == 16 << 30 and r["fits"] is True
    assert r["flops_per_step"] > 0 and r["compiled_flops_per_step"] > 0
    # the same run on one device per axis holds the whole model per device; --out keeps the report
    out = tmp_path / "report.json"
    q = _compile("--config", "configs/lexinvariant.py:tiny", "--topology", "v5e:2x2", "--out", str(out))
    assert q.returncode == 0, q.stderr[-3000:]
    assert json.loads(q.stdout)["bytes_per_device"]["params"] == whole
    assert json.loads(out.read_text()) == json.loads(q.stdout)


@needs_libtpu
def test_compile_refuses_what_it_cannot_do():
    p = _compile("--config", "configs/lexinvariant.py:tiny", "--topology", "v5e-four")
    assert p.returncode == 2 and "expected a TPU generation and chip grid" in p.stderr
    p = _compile("--config", "configs/lexinvariant.py:tiny", "--topology", "v5e:2x2", "--config.train.batch_size=6")
    assert p.returncode == 2 and "multiple of the data-parallel devices" in p.stderr
    p = _compile("--config", "configs/lexinvariant.py:tiny", "--topology", "v5e:2x2", "--out", "/nonexistent/r.json")
    assert p.returncode == 2 and "--out /nonexistent/r.json: directory /nonexistent does not exist" in p.stderr


def test_missing_libtpu_is_one_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "libtpu", None)  # import fails as if absent
    with pytest.raises(UserError, match=r"needs libtpu: pip install"):
        aot.topology_devices("v5e:2x2")


def test_device_memory_per_device_from_the_chip_and_grid():
    class Dev:
        def __init__(self, kind):
            self.device_kind = kind

    assert aot.device_memory_bytes([Dev("TPU v5 lite")] * 256, "v5e:16x16") == 16 << 30
    assert aot.device_memory_bytes([Dev("TPU v3")] * 8, "v3:2x2") == 16 << 30  # two cores share a chip's 32 GiB
    assert aot.device_memory_bytes([Dev("TPU v5")] * 4, "v5p:2x2x1") == 95 << 30
    assert aot.device_memory_bytes([Dev("Imaginary")] * 4, "x:2x2") is None
