"""XLA flags for every process the tests start (conftest sets them for pytest's own).

The suite's models are tiny, so its time goes into XLA compiling them, not running them.
XLA's backend optimisation level 0 compiles a tiny train step about 4-7x faster on CPU
(tests/sharded_losses.py, single device: 126 s -> 18 s on a loaded 2-core machine). Every
comparison in the suite (sharded vs one device, resumed vs uninterrupted, lexi vs
transformers) is made between programs compiled with the same flags, and ones against
tolerances; nothing here measures speed. Set LEXI_TEST_XLA_OPT=1 to test optimised code.
"""
import os

OPTIMISE = os.environ.get("LEXI_TEST_XLA_OPT") == "1"
BASE = "" if OPTIMISE else "--xla_backend_optimization_level=0"


def xla_flags(devices: int = 0) -> str:
    """The suite's flags, plus `devices` simulated CPU devices when > 0."""
    return " ".join(f for f in (BASE, f"--xla_force_host_platform_device_count={devices}" if devices else "") if f)
