"""Where metrics go: metrics.jsonl (one JSON object per logged step) and TensorBoard events."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import jax


class MetricsWriter:
    """Appends to RUN/metrics.jsonl and RUN/tb/. Only process 0 writes.

    On resume, lines for steps after the restored checkpoint are dropped first, so a run
    that was killed and resumed ends with the same file as one that never stopped.
    """

    def __init__(self, workdir: Path, resume_step: Optional[int] = None):
        self.enabled = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self._tb = None
        if not self.enabled:
            return
        if self.path.exists():
            self._truncate_after(resume_step or 0)
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(Path(workdir) / "tb"))
        except Exception:  # TensorBoard is optional: metrics.jsonl is the record
            self._tb = None

    def _truncate_after(self, step: int) -> None:
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
        tmp = self.path.with_suffix(".jsonl.tmp")  # a kill during the rewrite must not lose the file
        tmp.write_text("".join(l + "\n" for l in keep))
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        record = {"step": int(step)}
        for k, v in metrics.items():
            v = float(v) if not isinstance(v, (str, bool)) else v
            record[k] = v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, float):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()

