"""Build the colab/*.ipynb notebooks from their sources in colab/src/*.py.

    python colab/build.py           # write every notebook
    python colab/build.py --check   # exit 1 if a saved notebook differs from its source

A source is a Python file in "percent" format: `# %%` starts a code cell, `# %% [markdown]`
a markdown cell whose lines are comments (`# ` is stripped). `# %% [setup]` stands for the
two cells every notebook opens with (what the runtime is, installing lexi, choosing sizes:
SETUP_MARKDOWN and SETUP_CODE below); `# %% [setup cpu_devices=8]` also asks for 8 virtual
CPU devices when the runtime has no accelerator (set before JAX is imported).

Notebooks are written without outputs or execution counts and with fixed cell ids, so the
same sources always give the same bytes; tests/test_notebooks.py checks that and runs them.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"

SETUP_MARKDOWN = """\
## Setup

The next cell makes `import lexi` work and looks at the runtime. If lexi is not installed yet,
it installs it:

- from the checkout this notebook sits in (`colab/`, next to `setup.py`), with `pip install ..`
  (for editing lexi itself, `pip install -e .` in the checkout before starting Jupyter);
- else (e.g. on Colab) from the source the environment variable `LEXI_SOURCE` names: the lexi
  repository's git URL (`git+https://...`, as you would give it to `pip install`) or a local
  path. Set it in a cell before this one, e.g.
  `import os; os.environ["LEXI_SOURCE"] = "git+https://<host>/<you>/lexi.git"`.

lexi's config files come with the package (`lexi.configs`, the repository's `configs/`), so
`CONFIGS` below is wherever lexi was installed. If pip replaced the runtime's JAX, restart the
runtime and run the notebook again.

It then asks JAX which backend it runs on (`cpu`, `gpu` or `tpu`): the parameters cell below
picks tiny models for a CPU and bigger ones for an accelerator. `LEXI_NOTEBOOK_SMOKE=1` (what
the tests set) shrinks every count further, so the whole notebook runs in well under a minute;
`LEXI_NOTEBOOK_WORKDIR` says where run directories go (default: a fresh temporary folder).
"""

SETUP_CODE = '''\
import glob, importlib, importlib.resources, io, json, logging, os, shutil, subprocess, sys, tempfile, time, warnings
from pathlib import Path
{pre_jax}
def _install_lexi():
    """pip install lexi: the checkout around this notebook, else what LEXI_SOURCE names."""
    checkout = Path.cwd().resolve().parent
    if (checkout / "setup.py").is_file() and (checkout / "lexi").is_dir():
        source = str(checkout)
    elif os.environ.get("LEXI_SOURCE"):
        source = os.environ["LEXI_SOURCE"]
    else:
        raise RuntimeError("lexi is not installed: set LEXI_SOURCE to its git URL (git+https://...) or local path "
                           "and run this cell again")
    # a regular (not editable) install: this very process can import it at once
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", source])
    importlib.invalidate_caches()


try:
    import lexi
except ImportError:
    _install_lexi()
    import lexi

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

BACKEND = jax.default_backend()  # "cpu", "gpu" or "tpu"
SMOKE = os.environ.get("LEXI_NOTEBOOK_SMOKE") == "1"
WORKDIR = Path(os.environ.get("LEXI_NOTEBOOK_WORKDIR") or tempfile.mkdtemp(prefix="lexi_notebook_"))
WORKDIR.mkdir(parents=True, exist_ok=True)
CONFIGS = Path(str(importlib.resources.files("lexi.configs")))  # configs/*.py, installed with lexi
logging.basicConfig(format="%(message)s")
logging.getLogger("lexi").setLevel(logging.INFO)  # lexi's own progress notes
logging.getLogger("absl").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: a text bar


def show(fig):
    """Show a matplotlib figure inline as a PNG (whatever backend is active) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))


print(f"lexi {{lexi.__version__}} from {{Path(lexi.__file__).parent}}; configs in {{CONFIGS}}")
print(f"JAX {{jax.__version__}} on {{BACKEND}}: {{jax.device_count()}} x {{jax.devices()[0].device_kind}}")
print(f"run directories under {{WORKDIR}}{{' (smoke mode)' if SMOKE else ''}}")
'''

PRE_JAX_CPU_DEVICES = '''
# Before JAX is imported: on a runtime without an accelerator, split the CPU into {n} virtual
# devices, so that meshes and shardings can be shown here as they would be on {n} chips.
def _has_accelerator():
    if os.environ.get("JAX_PLATFORMS", "").lower() == "cpu":
        return False
    gpu = shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    tpu = bool(os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") or glob.glob("/dev/accel*")
               or glob.glob("/dev/vfio/[0-9]*"))
    return bool(gpu or tpu)


if "jax" in sys.modules:
    print("note: JAX is already imported; restart the runtime for the virtual CPU devices to take effect")
elif not _has_accelerator():
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count={n}").strip()
'''

_MARKER = re.compile(r"^# %%(?: \[(?P<tag>[^\]]*)\])?\s*$")


def parse(text: str) -> list[tuple[str, str]]:
    """(kind, source) cells of a percent-format file; kind is "markdown" or "code"."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = _MARKER.match(line)
        if m:
            cells.append((m.group("tag") or "code", []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    out = []
    for tag, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if tag == "markdown":
            bad = [ln for ln in lines if ln and not ln.startswith("#")]
            if bad:
                raise ValueError(f"markdown cell line without '#': {bad[0]!r}")
            out.append(("markdown", "\n".join(ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines)))
        elif tag == "code":
            out.append(("code", "\n".join(lines)))
        elif tag.startswith("setup"):
            devices = re.fullmatch(r"setup(?: cpu_devices=(\d+))?", tag)
            if not devices:
                raise ValueError(f"unknown setup marker [{tag}]")
            pre = PRE_JAX_CPU_DEVICES.format(n=devices.group(1)) if devices.group(1) else ""
            out.append(("markdown", SETUP_MARKDOWN.rstrip("\n")))
            out.append(("code", SETUP_CODE.format(pre_jax=pre).rstrip("\n")))
        else:
            raise ValueError(f"unknown cell marker [{tag}]")
    return out


def build(source: Path) -> str:
    """The notebook for one source, as the exact text saved in colab/."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "colab": {"provenance": [], "toc_visible": True},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(parse(source.read_text(encoding="utf-8"))):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        cell.id = f"{source.stem[:2]}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def sources() -> list[Path]:
    return sorted(SOURCES.glob("[0-9][0-9]_*.py"))


def target(source: Path) -> Path:
    return HERE / f"{source.stem}.ipynb"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook is stale")
    args = p.parse_args(argv)
    stale = []
    for src in sources():
        text, out = build(src), target(src)
        if args.check:
            if not out.exists() or out.read_text(encoding="utf-8") != text:
                stale.append(out.name)
        else:
            out.write_text(text, encoding="utf-8")
            print(f"wrote {out.relative_to(HERE.parent)}")
    if stale:
        print("stale (run python colab/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
