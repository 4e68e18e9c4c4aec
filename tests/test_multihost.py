"""Real multi-process runs on CPU: two processes on 127.0.0.1 (gloo collectives, two CPU
devices each) must train exactly like one process with four devices, and resume."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = str(Path(__file__).with_name("multihost_worker.py"))
MESH = ["--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=2", "--config.mesh.shape.tensor=2"]
RUN = ["--config.train.steps=6", "--config.train.batch_size=8", "--config.data.seq_len=32",
       "--config.train.log_every=1", "--config.train.checkpoint_every=3", "--config.train.eval_every=3",
       "--config.train.eval_batches=1", "--config.train.progress_bar=False", *MESH]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, cache_dir) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
                LEXI_CACHE=str(cache_dir))


def _launch(workdir, cache_dir, *, processes: int, stop_at: int = 0, extra=(), timeout: float = 300):
    """Run the worker as `processes` processes of one run; return their (returncode, output)."""
    devices = 4 // processes
    port = _free_port()
    procs, logs = [], []
    for pid in range(processes):
        dist = [] if processes == 1 else [f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                                          f"--config.distributed.num_processes={processes}",
                                          f"--config.distributed.process_id={pid}",
                                          "--config.distributed.initialization_timeout_s=60"]
        logs.append(Path(f"{workdir}.{stop_at}.{pid}.log"))
        with logs[-1].open("w") as f:  # files, not pipes: a full pipe must never stall a process
            procs.append(subprocess.Popen([sys.executable, WORKER, str(workdir), str(stop_at), *RUN, *dist, *extra],
                                          env=_env(devices, cache_dir), stdout=f, stderr=subprocess.STDOUT))
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            p.kill()
    return [(p.returncode, log.read_text()) for p, log in zip(procs, logs)]


def _ok(outs):
    for rc, out in outs:
        assert rc == 0, out[-3000:]


def _metrics(workdir) -> dict[int, dict]:
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    out: dict[int, dict] = {}
    for r in rows:
        out.setdefault(r["step"], {}).update(r)
    return out


def _curve(m: dict, key: str) -> list[float]:
    return [m[s][key] for s in sorted(m) if key in m[s]]


def test_two_processes_match_one_process_and_resume(tmp_path, cache_dir):
    one = tmp_path / "one"
    _ok(_launch(one, cache_dir, processes=1))
    two = tmp_path / "two"
    _ok(_launch(two, cache_dir, processes=2))
    m1, m2 = _metrics(one), _metrics(two)
    assert sorted(m1) == sorted(m2) == list(range(1, 7))
    np.testing.assert_allclose(_curve(m2, "loss"), _curve(m1, "loss"), rtol=1e-5)
    np.testing.assert_allclose(_curve(m2, "val_loss"), _curve(m1, "val_loss"), rtol=1e-5)
    assert len(_curve(m1, "val_loss")) == 2
    assert _curve(m1, "loss")[-1] < _curve(m1, "loss")[0]

    # checkpoints are written by both processes together and restored by both: stop after
    # step 3 (a checkpoint), then the same command resumes and matches the uninterrupted run
    cut = tmp_path / "cut"
    _ok(_launch(cut, cache_dir, processes=2, stop_at=3))
    assert sorted(_metrics(cut)) == [1, 2, 3]
    outs = _launch(cut, cache_dir, processes=2)
    _ok(outs)
    assert all("resumed from" in out and "at step 3" in out for _, out in outs), outs[0][1][-2000:]
    np.testing.assert_allclose(_curve(_metrics(cut), "loss"), _curve(m2, "loss"), rtol=1e-5)


def test_a_process_that_cannot_reach_the_coordinator_stops_with_a_clear_error(tmp_path, cache_dir):
    port = _free_port()  # nobody listens there
    env = _env(2, cache_dir)
    p = subprocess.run([sys.executable, WORKER, str(tmp_path / "w"), "0", *RUN,
                        f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                        "--config.distributed.num_processes=2", "--config.distributed.process_id=1",
                        "--config.distributed.initialization_timeout_s=3"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "could not join the run" in p.stderr and f"127.0.0.1:{port}" in p.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_distributed_settings_from_config_and_environment(monkeypatch):
    from lexi import distributed
    from lexi.errors import UserError

    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(distributed, "_detected_cluster", lambda: None)
    assert distributed.settings({"mode": "auto"}) is None
    assert distributed.settings({"mode": "off", "coordinator_address": "h:1"}) is None
    with pytest.raises(UserError, match="no coordinator is given"):
        distributed.settings({"mode": "on"})
    got = distributed.settings({"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3})
    assert got == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3,
                   "initialization_timeout": 300}
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.2:99")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    assert distributed.settings({})["coordinator_address"] == "10.0.0.2:99"
    assert distributed.settings({"process_id": 0})["process_id"] == 0  # the config wins
    monkeypatch.delenv("JAX_PROCESS_ID")
    with pytest.raises(UserError, match="missing process_id"):
        distributed.settings({})
    with pytest.raises(UserError, match="process_id must be in"):
        distributed.settings({"process_id": 2})
    with pytest.raises(UserError, match="HOST:PORT"):
        distributed.settings({"coordinator_address": "nohost", "process_id": 0})
    monkeypatch.setattr(distributed, "_detected_cluster", lambda: "GceTpuCluster")
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
    monkeypatch.delenv("JAX_NUM_PROCESSES")
    assert distributed.settings({}) == {"initialization_timeout": 300, "cluster": "GceTpuCluster"}
