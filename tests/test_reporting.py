"""Reporting: tables reproduce analytically known numbers, figures get written, bad inputs fail.

Synthetic prediction files are built from exact normal quantiles (not random draws), so a
"Gaussian tagger" has no statistical noise and its rejection at 50% signal efficiency can
be checked against 1 / (1 - Phi(mu)) to well under a percent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.stats import norm

from jetforge.reporting.reference import load_reference_entry
from jetforge.reporting.tables import (
    PredictionFormatError,
    paper_rows,
    rejection_table,
    setup_label,
    wasserstein_table,
)

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["nominal", "seed", "fsr_up", "fsr_down", "alt_shower"]


def _quantiles(n: int, mu: float) -> np.ndarray:
    """n exact quantiles of N(mu, 1): a noise-free 'sample'."""
    return mu + norm.ppf((np.arange(n) + 0.5) / n)


def write_predictions(
    path: Path,
    mu: float = 2.0,
    n: int = 4000,
    shifts: dict[str, float] | None = None,
    variant_mu: float | None = None,
    drop: tuple[str, ...] = (),
    nominal: bool = True,
    seed: int = 0,
) -> Path:
    """Format-5 predictions: n signal + n background jets per variant.

    Background scores ~ N(0, 1), signal ~ N(mu, 1) (as exact quantiles, shuffled); the
    non-nominal variants use signal mean ``variant_mu`` (default ``mu``) and are shifted by
    ``shifts[variant]`` (default 0: the nominal values, permuted). ``n2`` is a decreasing
    function of the score, so the N_2 row must reproduce the tagger's rejections.
    """
    rng = np.random.default_rng(seed)
    shifts = shifts or {}
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("score", "label", "variant", "parton_pid")}
    for v_idx, v in enumerate(VARIANTS):
        if v == "nominal" and not nominal:
            continue
        m = mu if v == "nominal" or variant_mu is None else variant_mu
        s = np.concatenate([_quantiles(n, 0.0), _quantiles(n, m)]) + shifts.get(v, 0.0)
        perm = rng.permutation(2 * n)
        cols["score"].append(s[perm])
        cols["label"].append(np.r_[np.zeros(n), np.ones(n)][perm])
        cols["variant"].append(np.full(2 * n, v_idx))
        pid = np.r_[np.where(np.arange(n) % 2, 21, 1), np.full(n, 25)]
        cols["parton_pid"].append(pid[perm])
    arr = {k: np.concatenate(v) for k, v in cols.items()}
    arr["n2"] = 0.25 - 0.05 * arr["score"]
    arr["process"] = (arr["label"] == 1).astype(np.int8)
    arr["pair_id"] = np.arange(len(arr["score"])) % (2 * n)
    dtypes = {"score": np.float32, "label": np.int8, "variant": np.int8, "process": np.int8,
              "parton_pid": np.int32, "pair_id": np.int64, "n2": np.float32}
    with h5py.File(path, "w") as f:
        for k, dt in dtypes.items():
            if k not in drop:
                f.create_dataset(k, data=arr[k].astype(dt))
        f.attrs["variant_names"] = VARIANTS
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------- reference


def test_reference_transcription_spot_checks():
    t2, t3, t4, t5 = (load_reference_entry("rs3l", t) for t in ("II", "III", "IV", "V"))
    assert t2["rows"]["Fine-tuned (3M, floating)"]["values"][0.3] == 1325
    assert t2["rows"]["Fine-tuned (3M, floating)"]["uncertainties"][0.3] == 31
    assert t2["rows"]["N_2"]["values"] == {0.3: 29, 0.5: 16, 0.7: 8}
    fixed = t3["rows"]["Fine-tuned (3M, fixed, all)"]
    assert fixed["values"]["seed"] == pytest.approx(8.63e-4)
    assert fixed["uncertainties"]["seed"] == pytest.approx(0.23e-4)
    assert t4["rows"]["Fully-supervised (3M, all)"]["values"][0.5] == 459
    assert t5["rows"]["Fully-supervised W vs QCD (3M, all)"]["values"]["alt_shower"] == \
        pytest.approx(4.33e-2)
    for t in (t2, t3, t4, t5):
        for row in t["rows"].values():
            assert set(row["values"]) == set(t["columns"]) == set(row["uncertainties"])
            assert all(isinstance(x, (int, float)) for x in row["values"].values())


def test_paper_rows_match_by_mode_augset_and_size_rank():
    t2, t3, t4 = (load_reference_entry("rs3l", t) for t in ("II", "III", "IV"))
    ours = ["n2", "fixed-all-n2000", "floating-all-n2000", "supervised-all-n700",
            "supervised-all-n2000"]
    assert paper_rows(ours, t2) == {
        "n2": "N_2",
        "fixed-all-n2000": "Fine-tuned (3M, fixed)",
        "floating-all-n2000": "Fine-tuned (3M, floating)",
        "supervised-all-n700": "Fully-supervised (1M)",
        "supervised-all-n2000": "Fully-supervised (3M)",
    }
    m4 = paper_rows(["floating-all-n2000", "supervised-all-n2000", "n2"], t4)
    assert m4 == {"floating-all-n2000": "Fine-tuned (1M, floating, all)",
                  "supervised-all-n2000": "Fully-supervised (1M, all)", "n2": None}
    m3 = paper_rows(["floating-seed_fsr-n50", "supervised-seed-n9", "fixed-seed-n5"], t3)
    assert m3 == {"floating-seed_fsr-n50": "Fine-tuned (3M, floating, seed+FSR)",
                  "supervised-seed-n9": "Fully-supervised (8M, seed)", "fixed-seed-n5": None}
    overridden = {**t2, "overrides": {"supervised-all-n700": "Fully-supervised (8M)"}}
    assert paper_rows(ours, overridden)["supervised-all-n700"] == "Fully-supervised (8M)"
    assert setup_label("floating-all-n2000") == "Fine-tuned (n=2000, floating, all)"
    assert setup_label("supervised-seed+fsr-n700") == "Fully-supervised (n=700, seed+fsr)"
    with pytest.raises(ValueError, match="setup id"):
        paper_rows(["bogus"], t2)


# ------------------------------------------------------------------------- rejection


def test_rejection_table_gaussian_and_perfect(tmp_path):
    mus = (2.0, 2.2)
    # the varied jets carry no separation: if they leaked in, the rejections would collapse
    gauss = [write_predictions(tmp_path / f"g{i}.h5", mu=mu, n=20000, variant_mu=0.0, seed=i)
             for i, mu in enumerate(mus)]
    perfect = write_predictions(tmp_path / "p.h5", mu=50.0)
    rows = rejection_table(
        {"floating-all-n2000": gauss, "supervised-all-n2000": [perfect], "n2": gauss[:1]},
        [0.3, 0.5, 0.7], load_reference_entry("rs3l", "II"),
        tmp_path / "rej.csv", tmp_path / "rej.md", "Higgs vs QCD",
    )
    by = {r["setup"]: r for r in rows}
    expected = [1.0 / norm.sf(mu) for mu in mus]  # threshold at the signal median = mu
    got = by["floating-all-n2000"]
    assert got["rej@0.5"] == pytest.approx(np.mean(expected), rel=0.01)
    assert got["rej@0.5_std"] == pytest.approx(np.std(expected, ddof=1), rel=0.05)
    assert got["n_repeats"] == 2
    # a perfect separator reaches the bound: no background jet passes, rejection = N_bkg
    assert by["supervised-all-n2000"]["rej@0.5"] == pytest.approx(4000)
    # N_2 is a decreasing function of the first file's score: identical rejections
    assert by["n2"]["rej@0.5"] == pytest.approx(1.0 / norm.sf(mus[0]), rel=0.01)
    assert by["n2"]["paper_rej@0.3"] == 29 and by["n2"]["paper_rej@0.3_unc"] is None
    assert got["paper_row"] == "Fine-tuned (3M, floating)" and got["paper_rej@0.3"] == 1325

    csv_rows = _read_csv(tmp_path / "rej.csv")
    assert [r["setup"] for r in csv_rows] == ["floating-all-n2000", "supervised-all-n2000", "n2"]
    assert {"rej@0.3", "rej@0.3_std", "paper_rej@0.3", "paper_rej@0.3_unc", "label"} <= set(
        csv_rows[0])
    assert csv_rows[2]["paper_rej@0.3_unc"] == ""
    md = (tmp_path / "rej.md").read_text()
    assert md.startswith("## Higgs vs QCD") and "Fine-tuned (n=2000, floating, all)" in md
    assert "1325 ± 31" in md and "±" in md.split("\n")[4]
    tex = (tmp_path / "rej.tex").read_text()  # the .tex rides next to the .csv
    assert r"\caption{Higgs vs QCD}" in tex and r"\begin{tabular}" in tex
    assert r"\end{tabular}" in tex and r"\toprule" in tex and r"1325 $\pm$ 31" in tex


def test_rejection_table_without_reference(tmp_path):
    f = write_predictions(tmp_path / "a.h5")
    rows = rejection_table({"fixed-all-n10": [f]}, [0.5], None, tmp_path / "t.csv",
                           tmp_path / "t.md", "t")
    assert rows[0]["paper_rej@0.5"] is None and rows[0]["rej@0.5_std"] == 0.0


# ------------------------------------------------------------------------- wasserstein


def test_wasserstein_table_identical_is_zero_and_shift_is_shift(tmp_path):
    files = [write_predictions(tmp_path / f"w{i}.h5", shifts={"fsr_up": 0.1, "alt_shower": -0.3},
                               seed=i) for i in range(2)]
    rows = wasserstein_table(
        {"fixed-all-n2000": files, "n2": files[:1]}, ["seed", "fsr_up", "fsr_down", "alt_shower"],
        load_reference_entry("rs3l", "III"), tmp_path / "w.csv", tmp_path / "w.md", "Robustness",
    )
    r = rows[0]
    assert r["w_seed"] == pytest.approx(0.0, abs=1e-6)
    assert r["w_fsr_down"] == pytest.approx(0.0, abs=1e-6)
    # whole sample (signal + background) shifted by the same amount: W = |shift|
    assert r["w_fsr_up"] == pytest.approx(0.1, rel=1e-3)
    assert r["w_alt_shower"] == pytest.approx(0.3, rel=1e-3)
    assert r["w_alt_shower_std"] == pytest.approx(0.0, abs=1e-6)
    assert r["paper_row"] == "Fine-tuned (3M, fixed, all)"
    assert r["paper_w_seed"] == pytest.approx(8.63e-4)
    # the N_2 row uses the raw N_2 = 0.25 - 0.05 * score: a shift of 0.1 becomes 0.005
    assert rows[1]["w_fsr_up"] == pytest.approx(0.005, rel=1e-2)
    assert rows[1]["paper_w_alt_shower"] == pytest.approx(1.22e-2)
    md = (tmp_path / "w.md").read_text()
    assert "(8.63 ± 0.23)e-04" in md and "Herwig (paper)" in md
    assert _read_csv(tmp_path / "w.csv")[0]["w_fsr_up"]


def test_wasserstein_of_random_draws_of_one_distribution_is_small(tmp_path):
    path = write_predictions(tmp_path / "r.h5")
    rng = np.random.default_rng(1)
    with h5py.File(path, "r+") as f:
        var, score = f["variant"][()], f["score"][()]
        seed_jets = var == VARIANTS.index("seed")
        score[seed_jets] = np.where(f["label"][()][seed_jets] == 1, 2.0, 0.0) + \
            rng.normal(size=seed_jets.sum())
        f["score"][...] = score
    rows = wasserstein_table({"fixed-all-n1": [path]}, ["seed"], None, tmp_path / "a.csv",
                             tmp_path / "a.md", "t")
    assert 0 < rows[0]["w_seed"] < 0.05


# ------------------------------------------------------------------------- failures


@pytest.mark.parametrize("missing", ["score", "label", "variant"])
def test_missing_dataset_raises_named_error(tmp_path, missing):
    f = write_predictions(tmp_path / "bad.h5", drop=(missing,))
    with pytest.raises(PredictionFormatError, match=missing):
        rejection_table({"fixed-all-n1": [f]}, [0.5], None, tmp_path / "x.csv",
                        tmp_path / "x.md", "t")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.md").exists()


def test_missing_n2_and_no_nominal_raise(tmp_path):
    no_n2 = write_predictions(tmp_path / "a.h5", drop=("n2",))
    with pytest.raises(PredictionFormatError, match="n2"):
        wasserstein_table({"n2": [no_n2]}, ["seed"], None, tmp_path / "x.csv", tmp_path / "x.md",
                          "t")
    no_nom = write_predictions(tmp_path / "b.h5", nominal=False)
    for fn, arg in ((rejection_table, [0.5]), (wasserstein_table, ["seed"])):
        with pytest.raises(PredictionFormatError, match="no jets of the reference variant"):
            fn({"fixed-all-n1": [no_nom]}, arg, None, tmp_path / "x.csv", tmp_path / "x.md", "t")


# ------------------------------------------------------------------------- figures


def _assert_figure(stem: Path) -> None:
    png, pdf = Path(f"{stem}.png"), Path(f"{stem}.pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000
    assert not list(stem.parent.glob(f".{stem.name}*tmp*")), "temporary left behind"


def _write_history(path: Path, repeat: int, epochs: int = 6) -> Path:
    rng = np.random.default_rng(repeat)
    cols = ["epoch", "step", "loss", "val_loss", "lr", "cos_pos_qcd", "cos_pos_hbb",
            "cos_class_means", "jets_per_s"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for e in range(epochs):
            t = e / max(1, epochs - 1)
            w.writerow([e, 100 * (e + 1), 5.0 - 1.5 * t + 0.05 * rng.normal(),
                        5.1 - 1.4 * t + 0.05 * rng.normal(), 1e-3, 0.85 - 0.05 * t,
                        0.75 + 0.15 * t + 0.01 * rng.normal(), 0.95 - 1.6 * t, 5000.0])
    return path


def _write_embeddings(path: Path, n_pairs: int = 120, d: int = 6) -> Path:
    """Embeddings with three clusters (quark, gluon, Higgs); variants scatter around nominal."""
    rng = np.random.default_rng(3)
    kind = rng.integers(0, 3, n_pairs)  # 0 quark, 1 gluon, 2 higgs
    centers = rng.normal(size=(3, d)) * 3.0
    base = centers[kind] + rng.normal(size=(n_pairs, d))
    v = len(VARIANTS)
    z = np.repeat(base, v, axis=0) + 0.3 * rng.normal(size=(n_pairs * v, d))
    kind_r = np.repeat(kind, v)
    with h5py.File(path, "w") as f:
        f.create_dataset("z", data=z.astype(np.float32))
        g = f.create_group("jets")
        g["label"] = (kind_r == 2).astype(np.int8)
        g["process"] = (kind_r == 2).astype(np.int8)
        g["variant"] = np.tile(np.arange(v), n_pairs).astype(np.int8)
        g["parton_pid"] = np.where(kind_r == 2, 25, np.where(kind_r == 1, 21, 2)).astype(np.int32)
        g["pair_id"] = np.repeat(np.arange(n_pairs), v).astype(np.int64)
        f.attrs["class_names"] = ["qcd", "hbb"]
        f.attrs["process_names"] = ["qcd_zjet", "hbb_zh"]
        f.attrs["variant_names"] = VARIANTS
    return path


@pytest.fixture
def figure_texts(monkeypatch):
    """Record every saved figure's strings, to check each carries the "Simulation" label."""
    from jetforge.reporting import figures, style

    seen: dict[str, list[str]] = {}
    original = style.save_figure

    def recording(fig, out_stem):
        seen[Path(str(out_stem)).name] = list(style.figure_texts(fig))
        return original(fig, out_stem)

    monkeypatch.setattr(figures, "save_figure", recording)
    monkeypatch.setattr(style, "save_figure", recording)
    return seen


def test_figures_are_written(tmp_path, figure_texts):
    from jetforge.reporting import figures

    preds = [write_predictions(tmp_path / f"p{i}.h5", mu=1.5 + 0.2 * i, n=1500, seed=i,
                               shifts={"fsr_up": 0.2, "fsr_down": -0.2, "alt_shower": 0.4})
             for i in range(2)]
    sup = [write_predictions(tmp_path / f"s{i}.h5", mu=1.2 + 0.1 * i, n=1500, seed=5 + i)
           for i in range(2)]
    # the ratio figure shows probabilities: squash the synthetic scores through a sigmoid
    for p in preds:
        with h5py.File(p, "r+") as f:
            f["score"][...] = 1.0 / (1.0 + np.exp(-(f["score"][()] - 1.0)))
    out = tmp_path / "figs"
    figures.roc_figure({"floating-all-n2000": preds, "fixed-all-n2000": preds[:1],
                        "supervised-all-n2000": sup, "n2": preds[:1]}, out / "roc", "Higgs vs QCD")
    figures.pretrain_history_figure([_write_history(tmp_path / f"h{i}.csv", i) for i in range(3)],
                                    out / "history")
    emb = _write_embeddings(tmp_path / "emb.h5")
    figures.tsne_figure(emb, out / "tsne", n_jets=200, seed=7)
    figures.corner_figure(emb, out / "corner")
    figures.score_ratio_figure(preds, out / "score.ratio")
    for stem in ("roc", "history", "tsne", "corner", "score.ratio"):
        _assert_figure(out / stem)
        # drawn by the figure function itself (not added by save_figure's fallback)
        assert "Simulation" in figure_texts[stem], stem
        assert not any(t in " ".join(figure_texts[stem]) for t in ("CMS", "ATLAS"))


def test_finetune_figure_and_fallback_label(tmp_path, figure_texts):
    import matplotlib.pyplot as plt

    from jetforge.reporting import finetune_scan, style

    rows = [{"task": "top", "mode": m, "n_train": n, "accuracy": a, "accuracy_std": 0.01}
            for m, a0 in (("floating", 0.8), ("supervised", 0.7)) for n, a in ((10, a0),
                                                                               (100, a0 + 0.1))]
    finetune_scan.figure(rows, str(tmp_path / "scan"), "fine-tuning scan")
    assert "Simulation" in figure_texts["scan"]
    fig, ax = plt.subplots()  # a figure drawn elsewhere gets the label when saved
    ax.plot([0, 1], [0, 1])
    style.save_figure(fig, tmp_path / "plain")
    assert "Simulation" not in figure_texts["plain"] and style.has_label(fig)


def test_roc_curve_agrees_with_rejection_at(tmp_path):
    from jetforge.evaluation.metrics import rejection_at
    from jetforge.reporting.figures import _rejection_curve

    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(20000), np.ones(20000)].astype(np.int64)
    scores = rng.normal(size=labels.size) + 2.0 * labels
    curve = _rejection_curve(scores, labels, np.array([0.3, 0.5, 0.7]))
    ref = [rejection_at(scores, labels, e) for e in (0.3, 0.5, 0.7)]
    assert curve == pytest.approx(ref, rel=0.05)


def test_figure_inputs_are_validated(tmp_path):
    from jetforge.reporting import figures

    with h5py.File(tmp_path / "e.h5", "w") as f:
        f.create_dataset("z", data=np.zeros((10, 3), np.float32))
    with pytest.raises(PredictionFormatError, match="jets/label"):
        figures.corner_figure(tmp_path / "e.h5", tmp_path / "c")
    bad_hist = tmp_path / "h.csv"
    bad_hist.write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(PredictionFormatError, match="val_loss"):
        figures.pretrain_history_figure([bad_hist], tmp_path / "h")
    assert not (tmp_path / "h.png").exists()
