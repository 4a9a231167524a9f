"""The one table writer: three formats from one DataFrame, and the repeat statistics."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from jetforge.reporting.table_io import mean_std_by, table_paths, tex_escape, write_table


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"setup": ["fixed-all-n10", "n2"], "rej@0.5": [12.5, np.nan],
                         "paper_rej@0.5": [380.0, None]})


def test_writer_writes_csv_md_and_tex_from_a_stem(tmp_path):
    paths = write_table(_frame(), tmp_path / "table2", "RS3L Table II: 1/ε_B", "Note ± 1 %.")
    assert {p.name for p in paths.values()} == {"table2.csv", "table2.md", "table2.tex"}
    with (tmp_path / "table2.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["rej@0.5"] == "12.5" and rows[1]["rej@0.5"] == ""  # blank, not "nan"
    md = (tmp_path / "table2.md").read_text().splitlines()
    assert md[0] == "## RS3L Table II: 1/ε_B" and md[1] == ""
    assert md[2].startswith("| setup") and "Note ± 1 %." in md
    tex = (tmp_path / "table2.tex").read_text()
    for token in (r"\begin{table}", r"\caption{RS3L Table II: 1/$\varepsilon$\_B}",
                  r"\begin{tabular}", r"\toprule", r"\midrule", r"\bottomrule",
                  r"\end{tabular}", r"\end{table}", r"fixed-all-n10", r"Note $\pm$ 1 \%."):
        assert token in tex, token
    assert tex.index(r"\begin{tabular}") < tex.index(r"\end{tabular}")


def test_display_frame_goes_to_md_and_tex_data_to_csv(tmp_path):
    display = pd.DataFrame({"Setup": ["Fine-tuned [2×]"], "ours": ["380 ± 4"]})
    write_table(_frame().iloc[:1], {"csv": tmp_path / "a.csv", "md": tmp_path / "b.md"}, "t",
                ["first", "second"], display=display)
    assert (tmp_path / "a.tex").exists()  # next to the CSV, same stem
    md = (tmp_path / "b.md").read_text()
    assert "380 ± 4" in md and "first\n\nsecond" in md and "rej@0.5" not in md
    assert "rej@0.5" in (tmp_path / "a.csv").read_text()
    assert r"380 $\pm$ 4" in (tmp_path / "a.tex").read_text()


def test_table_paths_and_escaping():
    got = table_paths(["x/roc_eff0.5.csv", "y/t.md"])
    assert got["tex"].as_posix() == "x/roc_eff0.5.tex" and got["md"].as_posix() == "y/t.md"
    assert table_paths("out/eff0.5")["csv"].name == "eff0.5.csv"
    with pytest.raises(ValueError, match="csv"):
        table_paths(["t.md"])
    assert tex_escape("a_b & 50% #1 {x}") == r"a\_b \& 50\% \#1 \{x\}"


def test_mean_std_by_is_numpys_ddof1_std_and_keeps_group_order():
    rng = np.random.default_rng(3)
    long = pd.DataFrame({"setup": ["b"] * 3 + ["a"] * 5 + ["c"],
                         "rej": rng.normal(100, 20, 9), "w": rng.normal(0, 1e-3, 9)})
    out = mean_std_by(long, "setup", ["rej", "w"])
    assert list(out["setup"]) == ["b", "a", "c"]
    for _, row in out.iterrows():
        x = long.loc[long["setup"] == row["setup"], ["rej", "w"]].to_numpy()
        assert row["n_repeats"] == len(x)
        assert row["rej"] == x[:, 0].mean() and row["w"] == x[:, 1].mean()  # bit-identical
        want = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(2)
        assert row["rej_std"] == want[0] and row["w_std"] == want[1]
    assert out.loc[out["setup"] == "c", "rej_std"].item() == 0.0  # one repeat: no spread


def test_mean_std_by_several_keys():
    long = pd.DataFrame({"task": ["t"] * 4, "n": [10, 10, 100, 100], "acc": [0.5, 0.7, 0.8, 0.9]})
    out = mean_std_by(long, ["task", "n"], ["acc"])
    assert out["acc"].tolist() == pytest.approx([0.6, 0.85])
    assert out["acc_std"].tolist() == pytest.approx([np.std([0.5, 0.7], ddof=1),
                                                     np.std([0.8, 0.9], ddof=1)])
