"""`lexi demo`, the README's first command, at its --smoke size: both models are trained and
evaluated by the demo's own code, and the table it prints must hold finite figures that behave
as the demo says (a lexinvariant model is blind to a cipher, a standard one is not)."""
import math
from pathlib import Path

import pytest

from lexi import cli

NOT_NUMBERS = {"cipher probe layer"}  # "2 (final norm)": the layer's index and name


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_table(out: str) -> dict[str, list[str]]:
    """{metric: [lexinvariant cell, standard cell]} from the markdown table the demo prints."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert cells(lines[0]) == ["metric", "lexinvariant", "standard"], lines[:2]
    assert lines[1].startswith("|---")
    table = {}
    for line in lines[2:]:
        metric, *values = cells(line)
        assert len(values) == 2 and all(values), line  # a figure for both models
        table[metric] = values
    return table


def numbers(table: dict[str, list[str]]) -> dict[str, list[float]]:
    """Every numeric row as floats; a cell that is not a finite number fails here."""
    out = {}
    for metric, values in table.items():
        if metric in NOT_NUMBERS:
            continue
        out[metric] = [float(v) for v in values]  # ValueError: not a number
        assert all(math.isfinite(v) for v in out[metric]), (metric, values)
    return out


LN_V = math.log(128)  # the char tokenizer's uniform loss, nats


def check_figures(n: dict[str, list[float]]) -> None:
    """What the demo's table claims, at a size where only the plainest of it has emerged."""
    assert n["training steps"] == [30.0, 30.0]
    lexi_loss, std_loss = n["mean loss"]
    assert 0 < lexi_loss < 2 * LN_V
    assert 0 < std_loss < LN_V  # 30 steps teach a standard model which letters are common
    for i in range(2):  # figures that follow from others (the table rounds to 3 decimals)
        assert n["bits per byte"][i] == pytest.approx(n["mean loss"][i] / math.log(2), abs=0.01)  # 1 byte a char
        assert n["plain loss"][i] == pytest.approx(n["mean loss"][i], abs=0.002)
        assert n["cipher / plain"][i] == pytest.approx(n["cipher loss"][i] / n["plain loss"][i], abs=0.002)
        first, second = n["induction, first copy loss"][i], n["induction, second copy loss"][i]
        assert first > 0 and second > 0 and n["induction gain"][i] == pytest.approx(first - second, abs=0.002)
    lexinvariant, standard = n["cipher / plain"]
    assert abs(lexinvariant - 1) < 0.02, "the lexinvariant model must not notice a substitution cipher"
    assert standard > 1.1, "the standard model knows which letters are common: a cipher must hurt it"
    shares = [m for m in n if m.startswith(("key precision", "frequency baseline", "lookup", "permutation"))]
    assert len(shares) >= 6 + 3 * 2 * 3  # 3 decodings x 2 lines of the probe, 3 tasks x 2 samplers x 3 figures
    assert all(0 <= v <= 1 for m in shares for v in n[m]), {m: n[m] for m in shares}
    assert n["permutation (uniform), chance top-1"] == [0.25, 0.25]  # 4 items to choose the first from
    assert {"lookup (uniform)", "lookup_16 (uniform)", "permutation (frequency), top-1 among candidates"} <= set(n)


@pytest.mark.slow
def test_demo_smoke_prints_a_sensible_table(tmp_path, cache_dir, capsys):
    assert cli.main(["demo", "--smoke", "--workdir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    table = parse_table(out)
    assert table["cipher probe layer"][0].endswith("(final norm)")
    check_figures(numbers(table))
    report = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("report: ")]
    assert report and Path(report[0]).read_text().count("| metric | lexinvariant | standard |") == 1
