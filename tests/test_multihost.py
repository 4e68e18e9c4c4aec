"""Real multi-process runs on CPU: two processes on 127.0.0.1 (gloo collectives, two CPU
devices each) must train exactly like one process with four devices, and resume."""
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from xla_flags import xla_flags

WORKER = str(Path(__file__).with_name("multihost_worker.py"))
MESH = ["--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=2", "--config.mesh.shape.tensor=2"]
RUN = ["--config.train.steps=6", "--config.train.batch_size=8", "--config.data.seq_len=32",
       "--config.train.log_every=1", "--config.train.checkpoint_every=3", "--config.train.eval_every=3",
       "--config.train.eval_batches=1", "--config.train.progress_bar=False", *MESH]


def _free_port() -> int:
    """A port free now; another program may take it before process 0 binds it (_launch retries then)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, cache_dir) -> dict:
    return dict(os.environ, XLA_FLAGS=xla_flags(devices), JAX_PLATFORMS="cpu",
                LEXI_CACHE=str(cache_dir))


# what process 0 prints when its coordinator port was taken between _free_port and its bind
# (lexi's own check; gRPC's, should the port go in the moment after that check)
PORT_TAKEN = re.compile(r"cannot serve as coordinator on port|address already in use|Failed to add port", re.I)


def _launch(workdir, cache_dir, *, processes: int, stop_at: int = 0, extra=(), timeout: float = 300, attempts=3):
    """Run the worker as `processes` processes of one run; return their (returncode, output).
    If the coordinator port was taken meanwhile (other tests run beside this one), start again on another."""
    for _ in range(attempts):
        outs = _launch_once(workdir, cache_dir, _free_port(), processes, stop_at, extra, timeout)
        if processes == 1 or not PORT_TAKEN.search(outs[0][1]):
            break
    return outs


def _launch_once(workdir, cache_dir, port, processes, stop_at, extra, timeout):
    devices = 4 // processes
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
    deadline = time.monotonic() + timeout
    try:  # until all are done, one fails (the others would wait for it) or time is up
        while any(p.poll() is None for p in procs) and not any(p.poll() for p in procs):
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(procs[0].args, timeout)
            time.sleep(0.1)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return [(p.returncode, log.read_text()) for p, log in zip(procs, logs)]


def _ok(outs):
    failed = sorted((rc < 0, i) for i, (rc, _) in enumerate(outs) if rc)  # the one that failed, not those stopped
    assert not failed, outs[failed[0][1]][1][-3000:]


FAKE_WORKER = """import sys
from lexi.distributed import _check_port_free
from lexi.errors import UserError

flags = dict(a.split("=", 1) for a in sys.argv[3:] if a.startswith("--config.distributed."))
if flags["--config.distributed.process_id"] == "0":
    try:
        _check_port_free(flags["--config.distributed.coordinator_address"])
    except UserError as e:
        sys.exit(f"lexi: error: {e}")
"""


def test_launch_starts_again_when_the_coordinator_port_was_taken(tmp_path, cache_dir, monkeypatch):
    """The port _free_port found is taken before process 0 binds it: _launch tries another one.
    (A stand-in worker: process 0 only runs lexi's check that its port is free.)"""
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    monkeypatch.setitem(globals(), "WORKER", str(worker))
    real_free_port, ports = _free_port, []

    def free_port():  # the first port it offers gets taken before process 0 starts
        ports.append(busy if not ports else real_free_port())
        return ports[-1]

    monkeypatch.setitem(globals(), "_free_port", free_port)
    with socket.socket() as taken:  # another program's server
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        outs = _launch(tmp_path / "w", cache_dir, processes=2, timeout=120)
    _ok(outs)
    assert ports[0] == busy and len(ports) == 2  # the taken port, then a free one


def _metrics(workdir) -> dict[int, dict]:
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    out: dict[int, dict] = {}
    for r in rows:
        out.setdefault(r["step"], {}).update(r)
    return out


def _curve(m: dict, key: str) -> list[float]:
    return [m[s][key] for s in sorted(m) if key in m[s]]


@pytest.mark.slow
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
    with socket.socket() as s:  # bound but never listening: connections are refused, and no one else can take it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        p = subprocess.run([sys.executable, WORKER, str(tmp_path / "w"), "0", *RUN,
                            f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                            "--config.distributed.num_processes=2", "--config.distributed.process_id=1",
                            "--config.distributed.initialization_timeout_s=3"],
                           env=_env(2, cache_dir), capture_output=True, text=True, timeout=120)
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
