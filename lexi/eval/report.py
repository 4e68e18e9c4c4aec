"""results.json -> report.md tables and PNG plots, for one run or several side by side."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lexi.eval.cipher import DECODINGS as CIPHER_DECODINGS


def _figure():
    """A figure drawn without pyplot, so writing report plots never switches the backend of a
    notebook or script that uses pyplot itself."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    return fig, fig.subplots()


def plot_loss_by_position(named: dict[str, dict], path: Path) -> None:
    fig, ax = _figure()
    for name, res in named.items():
        if "perplexity" in res:
            ax.plot(res["perplexity"]["loss_by_position"], label=name)
    ax.set_xlabel("context position")
    ax.set_ylabel("loss (nats per token, moving average)")
    ax.set_title("Loss vs context position")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_validation_loss(named: dict[str, dict], path: Path) -> None:
    fig, ax = _figure()
    for name, res in named.items():
        curve = res.get("training", {}).get("val_curve")
        if curve:
            ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss")
    ax.set_title("Validation loss during training")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_key_precision(named: dict[str, dict], path: Path) -> None:
    fig, ax = _figure()
    windows = set()
    for name, res in named.items():
        c = res.get("cipher")
        if not c or "key_precision_by_window" not in c:
            continue
        windows.add(c["window"])
        if "key_precision" not in c:  # results from before the decodings: the vote only
            ax.plot(c["window_starts"], c["key_precision_by_window"], marker="o", label=f"{name}: probe")
            ax.plot(c["window_starts"], c["frequency_baseline_by_window"], linestyle="--", label=f"{name}: frequency")
            continue
        color = None
        for decoding, marker in zip(CIPHER_DECODINGS, "os^"):
            line, = ax.plot(c["window_starts"], c["key_precision"][decoding]["by_window"], marker=marker, color=color,
                            label=f"{name}: probe, {decoding}")
            color = line.get_color()
        for decoding, style in (("vote", "--"), ("assignment", ":")):
            ax.plot(c["window_starts"], c["frequency_baseline"][decoding]["by_window"], linestyle=style, color=color,
                    label=f"{name}: frequency, {decoding}")
    ax.set_xlabel(f"window start (windows of {'/'.join(map(str, sorted(windows)))} tokens)")
    ax.set_ylabel("key precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("Cipher key recovery vs position")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def cipher_section(name: str, c: dict) -> list[str]:
    """Markdown lines: every layer's probe under every decoding (last window), the layer
    chosen by held-out loss marked; empty for results from before per-layer probes."""
    if "by_layer" not in c:
        return []
    head = ["layer", "held-out loss", "held-out accuracy", "kept step", "validation accuracy"] + list(CIPHER_DECODINGS)
    lines = [f"## Cipher key recovery by layer: {name}", "",
             f"Key precision in the last window of {c['window']} tokens; probes trained {c['probe_steps']} steps on "
             f"a pool of {c['probe_pool']} enciphered training windows, each kept at the step of its lowest loss on "
             "held-out pool windows, the layer (*) chosen by that loss. Frequency analysis of the same windows: " +
             ", ".join(f"{d} {c['frequency_baseline'][d]['last_window']:.3f}" for d in CIPHER_DECODINGS) + ".", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for layer in c["by_layer"]:
        mark = " *" if layer["layer"] == c["probe_layer"] else ""
        cells = [f"{layer['layer']} ({layer['name']}){mark}", layer["heldout_loss"], layer["heldout_accuracy"],
                 layer["best_step"], layer["probe_accuracy"]]
        cells += [layer["key_precision"][d]["last_window"] for d in CIPHER_DECODINGS]
        lines.append("| " + " | ".join(_fmt(v) for v in cells) + " |")
    return lines + [""]


def reasoning_tasks(r: dict) -> list[str]:
    """Task keys of a reasoning result, in run order (results from before "tasks" existed have
    lookup and permutation only)."""
    return list(r["tasks"]) if "tasks" in r else [t for t in ("lookup", "permutation") if t in r]


def reasoning_section(name: str, r: dict) -> list[str]:
    """Markdown lines: every task and sampler's scores beside the rule-based predictors' and
    chance, then the induction score; empty for results without these details."""
    if "detail" not in r:
        return []
    head = ["task", "symbols", "exact match", "top-1 among candidates", "chance top-1", "mean rank (chance)",
            "answer log-prob", "copier exact match", "unigram exact match", "unigram top-1"]
    lines = [f"## In-context reasoning: {name}", "",
             f"{r['examples']} examples each; {r.get('offset', 0)} tokens of text before every prompt. Candidates: "
             "the prompt's values (LookUp), the query's items (Permutation); ranks by the model's next-token "
             "log-probability, teacher forced. The copier matches the prompt's end (key and arrow) earlier in the "
             "context and copies what followed; the unigram counter predicts the most frequent token so far "
             "(with frequency-drawn symbols its top-1 beats chance: a value drawn twice is more often the answer).",
             "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for task in reasoning_tasks(r):
        for sampler, d in r["detail"][task].items():
            c = r.get("calibration", {}).get(task, {}).get(sampler, {})
            rank = f"{d['mean_rank']:.2f} ({d['mean_rank_chance']:.2f})" if "mean_rank" in d else ""
            cells = [task, sampler, d["exact_match"], d.get("top1_among_candidates", ""), d.get("top1_chance", ""),
                     rank, d["answer_logprob"], c.get("copier_exact_match", ""), c.get("unigram_exact_match", ""),
                     c.get("unigram_top1", "")]
            lines.append("| " + " | ".join(_fmt(v) for v in cells) + " |")
    ind = r.get("induction")
    if ind:
        lines += ["", f"Induction ({ind['sequences']} random strings of {ind['length']} tokens, each repeated once): "
                      f"loss {ind['first_copy_loss']:.3f} on the first copy, {ind['second_copy_loss']:.3f} on the "
                      f"second, gain {ind['induction_gain']:.3f} nats/token. For reference: uniform "
                      f"{ind['uniform_loss']:.3f}; an in-context unigram counter approaches {ind['log_distinct']:.3f} "
                      "on the second copy, a perfect copier 0."]
    return lines + [""]


def summary_rows(res: dict) -> dict[str, float]:
    """The headline numbers of one run, in a fixed order."""
    row: dict[str, float] = {}
    t = res.get("training")
    if t:
        row["training steps"] = t["steps"]
        if t.get("val_loss") is not None:
            row["validation loss (training)"] = t["val_loss"]
    p = res.get("perplexity")
    if p:
        curve = np.asarray(p["loss_by_position_raw"])
        k = max(1, len(curve) // 8)
        row["loss, first 1/8 of context"] = float(curve[:k].mean())
        row["loss, last 1/8 of context"] = float(curve[-k:].mean())
        row["mean loss"] = p["mean_loss"]
        row["bits per byte"] = p["bits_per_byte"]
        if p.get("readout", {}).get("ids") == "train_split":  # lexi/embeddings/readout.py: scored how
            ro = p["readout"]
            other = " + other" if ro["other_logit"] else ""
            row["readout: ids scored"] = f"{ro['scored_ids']} of {ro['vocab_size']}{other}"
    c = res.get("cipher")
    if c:
        row["plain loss"] = c["plain_loss"]
        row["cipher loss"] = c["cipher_loss"]
        row["cipher / plain"] = c["cipher_plain_ratio"]
        if "key_precision" in c:
            row["cipher probe layer"] = f"{c['probe_layer']} ({c['probe_layer_name']})"
            for d in CIPHER_DECODINGS:
                row[f"key precision, last window ({d})"] = c["key_precision"][d]["last_window"]
            for d in CIPHER_DECODINGS:
                row[f"frequency baseline, last window ({d})"] = c["frequency_baseline"][d]["last_window"]
        elif "key_precision_last_window" in c:
            row["key precision, last window"] = c["key_precision_last_window"]
            row["frequency baseline, last window"] = c["frequency_baseline_precision"]
    r = res.get("reasoning")
    if r:
        for task in reasoning_tasks(r):
            for sampler in ("uniform", "frequency"):
                row[f"{task} ({sampler})"] = r[task][sampler]
                d = r.get("detail", {}).get(task, {}).get(sampler, {})
                if "top1_among_candidates" in d:
                    row[f"{task} ({sampler}), top-1 among candidates"] = d["top1_among_candidates"]
                    row[f"{task} ({sampler}), chance top-1"] = d["top1_chance"]
        ind = r.get("induction")
        if ind:
            row["induction, first copy loss"] = ind["first_copy_loss"]
            row["induction, second copy loss"] = ind["second_copy_loss"]
            row["induction gain"] = ind["induction_gain"]
    m = res.get("mc")
    if m:
        row["multiple choice, log-likelihood"] = m["accuracy"]
        row["multiple choice, per byte"] = m["accuracy_per_byte"]
        if "accuracy_calibrated" in m:
            row["multiple choice, calibrated (minus the choice alone)"] = m["accuracy_calibrated"]
        row["multiple choice, chance"] = m["chance"]
    return row


def markdown_table(named: dict[str, dict]) -> str:
    rows = {name: summary_rows(res) for name, res in named.items()}
    metrics = list(dict.fromkeys(k for r in rows.values() for k in r))
    names = list(named)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in metrics:
        lines.append(f"| {m} | " + " | ".join(_fmt(rows[n].get(m, "")) for n in names) + " |")
    return "\n".join(lines)


def write_report(named: dict[str, dict], out_dir: Path, title: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    if any("perplexity" in r for r in named.values()):
        paths["loss_by_position"] = out_dir / "loss_by_position.png"
        plot_loss_by_position(named, paths["loss_by_position"])
    if any(r.get("training", {}).get("val_curve") for r in named.values()):
        paths["validation_loss"] = out_dir / "validation_loss.png"
        plot_validation_loss(named, paths["validation_loss"])
    if any("cipher" in r and "key_precision_by_window" in r["cipher"] for r in named.values()):
        paths["key_precision"] = out_dir / "key_precision.png"
        plot_key_precision(named, paths["key_precision"])
    table = markdown_table(named)
    md = [f"# {title}", "", table, ""]
    for name, res in named.items():
        md += cipher_section(name, res.get("cipher", {}))
    for name, res in named.items():
        md += reasoning_section(name, res.get("reasoning", {}))
    md += [f"![{k}]({p.name})" for k, p in paths.items()]
    paths["report"] = out_dir / "report.md"
    paths["report"].write_text("\n".join(md) + "\n")
    return paths


def load_results(run_dir: Path) -> dict:
    """A run's eval/results.json (if evaluated) plus its training record from metrics.jsonl
    (if trained here): the final validation loss and its curve."""
    from lexi.rundir import read_metrics

    path = Path(run_dir) / "eval" / "results.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    metrics = read_metrics(Path(run_dir)) if (Path(run_dir) / "metrics.jsonl").exists() else []
    if metrics:
        val = [(int(m["step"]), float(m["val_loss"])) for m in metrics if "val_loss" in m]
        res["training"] = {"steps": int(metrics[-1]["step"]), "val_loss": val[-1][1] if val else None,
                           "val_curve": val}
    if not res:
        from lexi.errors import UserError

        raise UserError(f"{run_dir} has neither eval/results.json nor metrics.jsonl; train it with `lexi train` "
                        f"or evaluate it with `lexi eval --workdir {run_dir}` first")
    return res
