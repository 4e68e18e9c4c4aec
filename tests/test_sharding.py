"""Sharded training equals single-device training; mesh errors are clear."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lexi import sharding
from lexi.errors import UserError

HERE = os.path.dirname(__file__)


@pytest.mark.parametrize("kind", ["trainable", "lexinvariant", "frozen", "adafactor"])
@pytest.mark.slow
def test_eight_device_meshes_and_grad_accum_match_one_device(kind):
    out = subprocess.run([sys.executable, os.path.join(HERE, "sharded_losses.py"), kind],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["single"][0] > r["single"][-2]  # it learns
    for name in ("dp_fsdp_tp", "fsdp8", "accum"):
        np.testing.assert_allclose(r[name], r["single"], rtol=2e-5, err_msg=name)


def test_mesh_shape_resolution_and_errors():
    assert sharding.mesh_shape({"data": -1, "fsdp": 2, "tensor": 1}, 8) == (4, 2, 1)
    with pytest.raises(UserError, match="needs a multiple of 3 devices"):
        sharding.mesh_shape({"data": -1, "fsdp": 3, "tensor": 1}, 8)
    with pytest.raises(UserError, match="uses 4 devices, but 8 are available"):
        sharding.mesh_shape({"data": 2, "fsdp": 2, "tensor": 1}, 8)
    with pytest.raises(UserError, match="at most one axis"):
        sharding.mesh_shape({"data": -1, "fsdp": -1, "tensor": 1}, 8)
