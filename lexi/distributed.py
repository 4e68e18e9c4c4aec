"""Joining a multi-process (multi-host) run: `jax.distributed.initialize` from the config or
the environment, before any device is touched.

Where the settings come from, first match wins:
1. `config.distributed.coordinator_address` / `num_processes` / `process_id`;
2. the environment: `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`;
3. a cluster JAX recognises (Cloud TPU pods, SLURM, Open MPI, Kubernetes), which
   supplies everything itself: on a TPU pod the same command runs on every host unchanged.

On CPU the processes talk through gloo collectives, so a "pod" of processes on one
machine (coordinator 127.0.0.1) runs the real multi-host code paths.
"""
from __future__ import annotations

import logging
import os
import socket
import time

import jax

from lexi.errors import UserError

log = logging.getLogger("lexi")

MODES = ("auto", "on", "off")


def _detected_cluster() -> str | None:
    """Name of the cluster environment JAX would auto-detect, or None."""
    try:
        from jax._src.clusters import ClusterEnv
    except ImportError:  # private module moved: only explicit settings then
        return None
    for env in ClusterEnv._cluster_types:
        try:
            if not env.opt_in_only_method and env.is_env_present():
                return env.__name__
        except Exception:  # a detector that fails is not a cluster
            continue
    return None


def _int_setting(value, env: str, unset) -> int | None:
    if value != unset:
        return int(value)
    text = os.environ.get(env)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"environment variable {env}={text!r} is not an integer") from None


def is_initialized() -> bool:
    from jax._src import distributed as _dist

    return _dist.global_state.client is not None


def settings(dist_cfg) -> dict | None:
    """The keyword arguments for `jax.distributed.initialize`, or None for a single process."""
    get = (lambda k, d: dist_cfg.get(k, d)) if dist_cfg is not None else (lambda k, d: d)
    mode = get("mode", "auto")
    if mode not in MODES:
        raise UserError(f"config.distributed.mode must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return None
    address = get("coordinator_address", "") or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = _int_setting(get("num_processes", 0), "JAX_NUM_PROCESSES", 0)
    pid = _int_setting(get("process_id", -1), "JAX_PROCESS_ID", -1)
    timeout = int(get("initialization_timeout_s", 300))
    if timeout <= 0:
        raise UserError(f"config.distributed.initialization_timeout_s must be positive, got {timeout}")
    explicit = bool(address) or num is not None or pid is not None
    cluster = None if explicit else _detected_cluster()
    if not explicit and cluster is None:
        if mode == "on":
            raise UserError("config.distributed.mode='on' but no coordinator is given and no cluster was detected: "
                            "set --config.distributed.coordinator_address=HOST:PORT, num_processes and process_id "
                            "(or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
        return None
    if explicit:
        missing = [name for name, v in (("coordinator_address", address or None), ("num_processes", num),
                                        ("process_id", pid)) if v is None]
        if missing:
            raise UserError(f"a multi-process run needs coordinator_address, num_processes and process_id; missing "
                            f"{', '.join(missing)} (config.distributed.* or JAX_COORDINATOR_ADDRESS, "
                            "JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
        if ":" not in address or not address.rsplit(":", 1)[1].isdigit():
            raise UserError(f"config.distributed.coordinator_address {address!r} must look like HOST:PORT")
        if num < 1 or not 0 <= pid < num:
            raise UserError(f"config.distributed: process_id must be in [0, num_processes); got process_id={pid}, "
                            f"num_processes={num}")
        return {"coordinator_address": address, "num_processes": num, "process_id": pid,
                "initialization_timeout": timeout}
    return {"initialization_timeout": timeout, "cluster": cluster}


def initialize(dist_cfg) -> bool:
    """Join the run's processes if the config or environment says there are several.
    Returns True when this is a multi-process run. Idempotent."""
    if is_initialized():
        return True
    kwargs = settings(dist_cfg)
    if kwargs is None:
        return False
    cluster = kwargs.pop("cluster", None)
    # CPU devices of different processes reach each other through gloo (no-op for accelerators)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    where = kwargs.get("coordinator_address") or f"the {cluster} coordinator"
    who = (f"process {kwargs['process_id']} of {kwargs['num_processes']}" if "process_id" in kwargs
           else "this process")
    log.info("joining a multi-process run: %s, coordinator %s", who, where)
    if kwargs.get("process_id") == 0:
        _check_port_free(kwargs["coordinator_address"])
    elif "process_id" in kwargs:
        # XLA aborts the process when the coordinator never answers; find out first, and say so
        if not wait_for_port(kwargs["coordinator_address"], kwargs["initialization_timeout"]):
            raise _unreachable(who, where, kwargs["initialization_timeout"], ConnectionError("no answer"))
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as e:
        if "must be called before" in str(e):
            raise UserError("jax.distributed.initialize must run before JAX touches any device; start lexi in a "
                            "fresh process (not after other JAX work in the same interpreter)") from e
        raise _unreachable(who, where, kwargs["initialization_timeout"], e) from e
    except Exception as e:  # XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE, ...) and friends
        raise _unreachable(who, where, kwargs["initialization_timeout"], e) from e
    log.info("process %d of %d; %d local devices, %d in all", jax.process_index(), jax.process_count(),
             jax.local_device_count(), jax.device_count())
    return True


def _check_port_free(address: str) -> None:
    port = int(address.rpartition(":")[2])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError as e:
            raise UserError(f"process 0 cannot serve as coordinator on port {port}: {e.strerror or e}. Pick a free "
                            "port for config.distributed.coordinator_address") from e


def wait_for_port(address: str, timeout: float) -> bool:
    """True once something accepts TCP connections at HOST:PORT, False after `timeout` s."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(2.0, timeout)):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _unreachable(who: str, where: str, timeout: int, err: Exception) -> UserError:
    first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    return UserError(f"{who} could not join the run through {where} within {timeout} s ({first}). Check that "
                     "every process was started with the same coordinator address and process count, that "
                     "process 0 is running, and that its port is reachable from this host; "
                     "config.distributed.initialization_timeout_s sets how long to wait.")
