"""Helper for test_multihost.py: one process of a (possibly multi-process) `lexi train` run.

usage: python multihost_worker.py WORKDIR STOP_AT [--config.a.b=v ...]   (STOP_AT 0 = run to the end)
Config: $LEXI_WORKER_CONFIG, default configs/lexinvariant.py:tiny.
The parent sets XLA_FLAGS (devices per process) and, for several processes, the
config.distributed overrides; this process joins through lexi's own start-up path.
"""
import logging
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from lexi.config import load_config  # noqa: E402
from lexi.errors import UserError  # noqa: E402
from lexi.train.loop import train  # noqa: E402

CONFIG = os.environ.get("LEXI_WORKER_CONFIG") or (
    os.path.join(os.path.dirname(__file__), "..", "configs", "lexinvariant.py") + ":tiny")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", force=True)
    workdir, stop_at, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    try:
        train(load_config(CONFIG, overrides), workdir, stop_at=stop_at or None)
    except UserError as e:
        print(f"lexi: error: {e}", file=sys.stderr)
        sys.exit(2)
