"""Issue 17's CPU pair against its goals: `configs/lexinvariant.py:cpu` and its standard twin,
evaluated with a seed neither run trained with, beside the in-context counters on the same
validation windows.

  taskset -c 0 lexi train --config configs/lexinvariant.py:cpu --workdir runs/lx_cpu &
  taskset -c 1 lexi train --config configs/standard.py:cpu --workdir runs/std_cpu &
  wait
  python benchmarks/cpu_pair.py --lx runs/lx_cpu --std runs/std_cpu --seed 1

Evaluates each run (`lexi eval` with EVAL_FLAGS, both at once, one per core, where taskset
exists) unless its eval/results.json already has that seed, then prints the README's table
and writes it, with the figures it was built from, to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

EVAL_FLAGS = ("--suite", "perplexity,cipher,reasoning", "--sequences", "100", "--examples", "200",
              "--reasoning-offset", "128", "--induction-length", "64", "--probe-steps", "10000")


def _results(run: Path) -> dict | None:
    f = run / "eval" / "results.json"
    return json.loads(f.read_text()) if f.is_file() else None


def evaluate(runs: list[Path], seed: int) -> None:
    """`lexi eval` on every run whose results are missing or from another seed, in parallel."""
    todo = [r for r in runs if (_results(r) or {}).get("seed") != seed]
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= len(todo)
    procs = []
    for core, run in enumerate(todo):
        cmd = ["lexi", "eval", "--workdir", str(run), "--seed", str(seed), *EVAL_FLAGS]
        cmd = (["taskset", "-c", str(core)] if pin else []) + cmd
        print(" ".join(cmd), flush=True)
        log = open(run / "eval.log", "w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), run))
    for p, run in procs:
        if p.wait():
            sys.exit(f"lexi eval failed on {run}; see {run / 'eval.log'}")


def _eighths(curve) -> tuple[float, float]:
    k = len(curve) // 8
    return sum(curve[:k]) / k, sum(curve[-k:]) / k


def _verdict(ok: bool, by: str = "") -> str:
    return "**met**" if ok else f"**missed**{' by ' + by if by else ''}"


def table(lx: dict, std: dict, counters: dict) -> list[str]:
    """The README's rows: metric | lexinvariant | standard | goal."""
    rows = ["| metric | lexinvariant | standard | goal |", "|---|---|---|---|"]
    add = lambda *cells: rows.append("| " + " | ".join(cells) + " |")  # noqa: E731
    (lf, ll), (sf, sl) = (_eighths(r["perplexity"]["loss_by_position_raw"]) for r in (lx, std))
    uni, bi = counters["unigram"]["last"], counters["bigram"]["last"]
    add("loss, first 1/8 of context (nats/char)", f"{lf:.3f}", f"{sf:.3f}", "")
    add("loss, last 1/8 of context", f"{ll:.3f}", f"{sl:.3f}",
        f"lexinvariant below the bigram counter ({bi:.3f}): {_verdict(ll < bi, f'{ll - bi:.3f} nats')}")
    add("in-context counters on the same windows, last 1/8: unigram / bigram", f"{uni:.3f} / {bi:.3f}", "", "")
    add("bits per byte", f"{lx['perplexity']['bits_per_byte']:.3f}", f"{std['perplexity']['bits_per_byte']:.3f}", "")
    ratio = lambda r: f"{r['cipher']['cipher_plain_ratio']:.3f}"  # noqa: E731
    add("cipher / plain loss", ratio(lx), ratio(std), "")
    for name, r in (("lexinvariant", lx), ("standard", std)):
        kp, fb = r["cipher"]["key_precision"], r["cipher"]["frequency_baseline"]
        r["_key"] = {d: (kp[d]["last_window"], fb[d]["last_window"]) for d in ("assignment", "letters", "vote")}
    key = lambda r, d: "{:.3f} ({:.3f})".format(*r["_key"][d])  # noqa: E731
    a_lx, v_lx = lx["_key"]["assignment"][0], lx["_key"]["vote"]
    add("key precision, last window, one-to-one assignment (frequency analysis)", key(lx, "assignment"),
        key(std, "assignment"), f">= 0.9: {_verdict(a_lx >= 0.9, f'{0.9 - a_lx:.3f}')}")
    add("key precision, last window, letters-only vote (frequency analysis)", key(lx, "letters"),
        key(std, "letters"), "")
    add("key precision, last window, the paper's vote (frequency analysis)", key(lx, "vote"), key(std, "vote"),
        f">= 2x frequency analysis: {_verdict(v_lx[0] >= 2 * v_lx[1])} ({v_lx[0] / max(v_lx[1], 1e-9):.2f}x)")
    add("probe layer (chosen on held-out training windows)", str(lx["cipher"]["probe_layer_name"]),
        str(std["cipher"]["probe_layer_name"]), "")
    rl, rs = lx["reasoning"], std["reasoning"]
    both = lambda r, task: f"{r[task]['uniform']:.3f} / {r[task]['frequency']:.3f}"  # noqa: E731
    top = lambda r, task: "{top1_among_candidates:.3f} ({top1_chance:.3f})".format(  # noqa: E731
        **r["detail"][task]["uniform"])
    for task, label in (("lookup", "LookUp, 4 pairs"), ("lookup_16", "LookUp, 16 pairs"),
                        ("permutation", "Permutation")):
        lu, su = rl[task]["uniform"], rs[task]["uniform"]
        goal = {"lookup": f"lexinvariant >= 0.5 and above standard: {_verdict(lu >= 0.5 and lu > su)}",
                "permutation": f"lexinvariant above standard: {_verdict(lu > su)}"}.get(task, "")
        add(f"{label}, exact match, uniform / frequency symbols", both(rl, task), both(rs, task), goal)
        add(f"{label}, answer ranked first among the prompt's candidates (chance), uniform", top(rl, task),
            top(rs, task), "")
    ind = lambda r: "{second_copy_loss:.3f} ({first_copy_loss:.3f}; {uniform_loss:.3f})".format(  # noqa: E731
        **r["induction"])
    add(f"induction: loss on the 2nd copy of a random {rl['induction']['length']}-string (1st copy; uniform)",
        ind(rl), ind(rs), "")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lx", type=Path, default=Path("runs/lx_cpu"))
    ap.add_argument("--std", type=Path, default=Path("runs/std_cpu"))
    ap.add_argument("--seed", type=int, default=1, help="evaluation seed; the runs trained with seed 0")
    ap.add_argument("--out", type=Path, default=Path("runs/cpu_pair"))
    args = ap.parse_args(argv)
    evaluate([args.lx, args.std], args.seed)
    lx, std = _results(args.lx), _results(args.std)
    sys.path.insert(0, str(Path(__file__).parent))
    from in_context_baselines import eval_windows_for, summary

    kind, seq_len = lx["tokenizer"], lx["seq_len"]
    d = json.loads((args.lx / "config.json").read_text())["model"]["d_model"]
    counters = summary(*eval_windows_for(kind, seq_len, lx["perplexity"]["num_sequences"]), d=d)
    rows = table(lx, std, counters)
    print("\n".join(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text("\n".join(rows) + "\n")
    keep = {k: v for k, v in counters.items() if k != "readout_cost_last"}
    for c in keep.values():
        c.pop("loss_by_position", None)
    (args.out / "counters.json").write_text(json.dumps({**keep, "readout_cost_last": counters["readout_cost_last"]},
                                                       indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
