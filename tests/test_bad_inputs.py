"""Bad input is refused at the door: a config before any job, a file where it enters.

Each case asserts where the run stops and that the message names the key (config) or the
file (inputs), the bad value and, where it helps, the fix. The config cases are the
categories of issue 11 (non-finite numbers, the hadfork builder's keys, unsafe names, LHE
paths, method-specific keys); four of them also go through ``snakemake -n`` to show the
workflow stops while parsing (nothing runs, no ``results/``). The file cases cover LHE
particle and event counts, unreadable or truncated HDF5 files, NaN/inf features at merge
and a fine-tuning subset larger than the split.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from jetforge.config import ConfigError, compose_config, read_config_file, validate_config
from jetforge.io.h5 import DatasetFormatError, merge_jet_datasets, write_jet_dataset
from jetforge.io.lhe import LHEError, LHEEvent, LHEInit, LHEParticle, read_lhe, write_lhe

REPO = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------- configs


def _set(path: str, value: object) -> Callable[[dict], None]:
    """A mutation setting ``path`` (dots; ``[i]`` for list items) of the config to ``value``."""

    def mutate(cfg: dict) -> None:
        *parents, last = re.findall(r"[^.\[\]]+", path)
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _rename(path: str, old: str, new: str) -> Callable[[dict], None]:
    """A mutation renaming the entry ``old`` of the mapping at ``path`` to ``new``."""

    def mutate(cfg: dict) -> None:
        node = cfg
        for p in path.split("."):
            node = node[p]
        node[new] = node.pop(old)

    return mutate


def _lhe(dataset: str, pattern: str) -> Callable[[dict], None]:
    return _set(f"datasets.{dataset}.hard_process", {"source": "lhe", "lhe_pattern": pattern})


def _then(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(cfg: dict) -> None:
        for m in mutations:
            m(cfg)

    return mutate


GOOD_LHE = "/data/mg5/{process}/{split}/chunk{chunk}.lhe"

#: (id, mutation of config/config.yaml, what the message must say)
CONFIG_CASES: list[tuple[str, Callable[[dict], None], str]] = [
    # non-finite numbers, anywhere (the schema's ranges cannot refuse NaN)
    ("nan_cut", _set("datasets.rs3l.hard_cuts.pt_min", NAN),
     r"datasets\.rs3l\.hard_cuts\.pt_min: value nan is not a finite number"),
    ("inf_jet_eta", _set("datasets.jetclass.jets.eta_max", INF),
     r"datasets\.jetclass\.jets\.eta_max: value inf is not a finite number"),
    ("nan_temperature", _set("experiments.jbot.pretrain.temp_teacher", NAN),
     r"experiments\.jbot\.pretrain\.temp_teacher: value nan is not a finite"),
    ("inf_lr", _set("experiments.rs3l.pretrain.lr", INF),
     r"experiments\.rs3l\.pretrain\.lr: value inf is not a finite"),
    ("minus_inf_finetune_lr", _set("experiments.mpm.finetune.lr", -INF),
     r"experiments\.mpm\.finetune\.lr: value -inf is not a finite"),
    ("nan_in_list", _set("experiments.rs3l.tables.table2.efficiencies[0]", NAN),
     r"tables\.table2\.efficiencies\[0\]: value nan is not a finite"),
    # misspelt keys of the fine-tuning and probe blocks are refused, not silently ignored
    ("finetune_typo", _set("experiments.jbot.finetune.epochz", 3),
     r"experiments\.jbot\.finetune: unknown key\(s\) \['epochz'\]; allowed keys: \[.*'epochs'"),
    ("probe_typo", _set("experiments.rs3l.probe.kk", 3),
     r"experiments\.rs3l\.probe: unknown key\(s\) \['kk'\]; allowed keys: \[.*'k'"),
    ("probe_metric", _set("experiments.rs3l.probe.metric", "manhattan"),
     r"experiments\.rs3l\.probe\.metric: value 'manhattan' is not allowed"),
    # the hadfork builder's keys
    ("hadfork_n_cells_0", _set("datasets.hadfork.n_cells", 0),
     r"datasets\.hadfork\.n_cells: value 0 is not allowed: 0 is less than the minimum of 1"),
    ("hadfork_negative_mu", _set("datasets.hadfork.pileup.mu", -5),
     r"datasets\.hadfork\.pileup\.mu: value -5 is not allowed"),
    ("hadfork_unknown_key", _set("datasets.hadfork.colour", 1),
     r"datasets\.hadfork: unknown key\(s\) \['colour'\]; allowed keys: \['chunks'"),
    ("hadfork_unknown_jets_key", _set("datasets.hadfork.jets.radius", 0.4),
     r"datasets\.hadfork\.jets: unknown key\(s\) \['radius'\]"),
    ("hadfork_missing_key", lambda c: c["datasets"]["hadfork"]["tracks"].pop("max_dz"),
     r"datasets\.hadfork\.tracks: 'max_dz' is a required property"),
    ("hadfork_pileup_without_library", lambda c: c["datasets"]["hadfork"]["pileup"].pop(
        "library_events"), r"datasets\.hadfork\.pileup: 'library_events' is a required"),
    ("hadfork_string_number", _set("datasets.hadfork.tracks.max_dz", "2mm"),
     r"datasets\.hadfork\.tracks\.max_dz: value '2mm' is not allowed"),
    # names become paths and wildcards
    ("dataset_name_escapes", _rename("datasets", "jetnet", "../../x"),
     r"config key datasets: name '\.\./\.\./x' is not allowed: .* letters, digits and _"),
    ("experiment_name_space", _rename("experiments", "jbot", "my jbot"),
     r"config key experiments: name 'my jbot' is not allowed"),
    ("augset_name_slash", _rename("experiments.rs3l.pretrain.augsets", "all", "a/b"),
     r"experiments\.rs3l\.pretrain\.augsets: name 'a/b' is not allowed"),
    ("task_name_dots", _rename("experiments.jbot.finetune.tasks", "five_class", "../t"),
     r"experiments\.jbot\.finetune\.tasks: name '\.\./t' is not allowed"),
    ("table_name", _rename("experiments.rs3l.tables", "table5", "../t5"),
     r"experiments\.rs3l\.tables: name '\.\./t5' is not allowed"),
    ("table_name_reserved", _rename("experiments.rs3l.tables", "table5", "probes"),
     r"experiments\.rs3l\.tables\.probes: 'probes' is the name of another output"),
    ("split_name", _rename("datasets.jetnet.chunks", "val", "Val"),
     r"datasets\.jetnet\.chunks: name 'Val' is not allowed"),
    ("split_reference", _set("experiments.rs3l.splits.pretrain", "../pretrain"),
     r"experiments\.rs3l\.splits\.pretrain: value '\.\./pretrain' is not allowed"),
    ("detector_shell", _set("datasets.rs3l.detector", "cms_eflow; rm -rf ~"),
     r"datasets\.rs3l\.detector: value 'cms_eflow; rm -rf ~' is not allowed"),
    # LHE paths: one file per process, split and chunk; path characters only
    ("lhe_without_process", _lhe("rs3l", "/data/{split}/chunk{chunk}.lhe"),
     r"rs3l\.hard_process\.lhe_pattern: value '/data/\{split\}/chunk\{chunk\}\.lhe' must "
     r"contain .*missing \['\{process\}'\]"),
    ("lhe_without_split", _lhe("jetclass", "/data/{process}/chunk{chunk}.lhe"),
     r"jetclass\.hard_process\.lhe_pattern: .*missing \['\{split\}'\]"),
    ("lhe_without_chunk", _lhe("jetnet", "/data/{process}/{split}.lhe"),
     r"jetnet\.hard_process\.lhe_pattern: .*missing \['\{chunk\}'\]"),
    ("lhe_unknown_placeholder", _lhe("rs3l", "/data/{process}/{split}/{seed}_{chunk}.lhe"),
     r"rs3l\.hard_process\.lhe_pattern: .*unknown \['\{seed\}'\]"),
    ("lhe_command_substitution", _lhe("rs3l", "/data/$(touch pwned)/{process}{split}{chunk}"),
     r"rs3l\.hard_process\.lhe_pattern: value '/data/\$\(touch pwned\)/.*does not match"),
    ("lhe_semicolon", _lhe("toptag", "/data/{process}/{split}/{chunk}.lhe;reboot"),
     r"toptag\.hard_process\.lhe_pattern: value .*reboot' is not allowed"),
    ("lhe_for_hadfork", _lhe("hadfork", GOOD_LHE),
     r"datasets\.hadfork\.hard_process\.source: 'lhe', but a 'hadfork' dataset generates"),
    # the methods' own keys
    ("tokenizer_kind", _set("experiments.mpm.tokenizer.kind", "bpe"),
     r"experiments\.mpm\.tokenizer\.kind: value 'bpe' is not allowed: 'bpe' is not one of "
     r"\['vqvae', 'kmeans', 'regression'\]"),
    ("pretrain_val_fraction", _set("experiments.rs3l.pretrain.val_fraction", 1.5),
     r"experiments\.rs3l\.pretrain\.val_fraction: value 1\.5 is not allowed"),
    ("tokenizer_val_fraction", _set("experiments.mpm.tokenizer.val_fraction", 1.5),
     r"experiments\.mpm\.tokenizer\.val_fraction: value 1\.5 is not allowed"),
    ("jbot_hot_teacher", _set("experiments.jbot.pretrain.temp_teacher", "hot"),
     r"experiments\.jbot\.pretrain\.temp_teacher: value 'hot' is not allowed: 'hot' is not of "
     r"type 'number'"),
    ("jbot_augment_key", _set("experiments.jbot.pretrain.augment", {"flip": True}),
     r"experiments\.jbot\.pretrain\.augment: unknown key\(s\) \['flip'\]"),
    ("mpm_target_vs_tokenizer", _set("experiments.mpm.pretrain.target", "vqvae"),
     r"experiments\.mpm\.pretrain\.target: value 'vqvae' but tokenizer\.kind is 'kmeans'"),
    ("mpm_mask_ratio", _set("experiments.mpm.pretrain.mask_ratio", 1.0),
     r"experiments\.mpm\.pretrain\.mask_ratio: value 1\.0 is not allowed"),
    ("vqvae_without_engine", _then(_set("experiments.mpm.tokenizer", {"kind": "vqvae"}),
                                   _set("experiments.mpm.pretrain.target", "vqvae")),
     r"experiments\.mpm\.tokenizer: 'batch_size' is a required property"),
    ("jepa_regularizer", _set("experiments.jpjepa.pretrain.regularizer", "l2"),
     r"experiments\.jpjepa\.pretrain\.regularizer: value 'l2' is not allowed"),
    ("simclr_tau", _set("experiments.rs3l.pretrain.tau", -0.1),
     r"experiments\.rs3l\.pretrain\.tau: value -0\.1 is not allowed"),
    ("ae_vicreg_target", _set("experiments.hadfork_ae.pretrain.vc_target", "w"),
     r"experiments\.hadfork_ae\.pretrain\.vc_target: value 'w' is not allowed"),
    ("pretrain_variants", _set("experiments.jpjepa.pretrain.variants", "some"),
     r"experiments\.jpjepa\.pretrain\.variants: value 'some' is not allowed"),
    ("pretrain_typo", _set("experiments.jbot.pretrain.temp_teachr", 0.04),
     r"experiments\.jbot\.pretrain: unknown key\(s\) \['temp_teachr'\]; allowed keys: .*"
     r"'temp_teacher'"),
    ("tokenizer_typo", _set("experiments.mpm.tokenizer.n_code", 64),
     r"experiments\.mpm\.tokenizer: unknown key\(s\) \['n_code'\]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config_is_refused_before_any_job(default_config, mutate, expected):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError, match=expected):
        validate_config(cfg)


def test_config_cases_are_many_and_distinct():
    assert len(CONFIG_CASES) >= 37
    assert len({c[0] for c in CONFIG_CASES}) == len(CONFIG_CASES)


def test_good_lhe_pattern_and_every_error_at_once(default_config):
    """A pattern with the three placeholders passes; several bad values are all listed."""
    cfg = copy.deepcopy(default_config)
    _lhe("jetclass", GOOD_LHE)(cfg)
    validate_config(copy.deepcopy(cfg))
    cfg["datasets"]["hadfork"]["n_cells"] = 0
    cfg["experiments"]["jbot"]["pretrain"]["lr"] = NAN
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "hadfork.n_cells" in str(err.value) and "jbot.pretrain.lr" in str(err.value)


def test_hadfork_builder_checks_its_keys_before_any_job(default_config, monkeypatch):
    """The hadfork builder's own parse_config runs in validate_config, as single's does:
    whatever it refuses stops the run before any job, under the dataset's key."""
    import jetforge.datasets.hadfork as hadfork

    ds = copy.deepcopy(default_config["datasets"]["hadfork"])
    assert hadfork.parse_config(ds).n_cells == ds["n_cells"]
    ds["pairs"]["max_dr"] = 0
    with pytest.raises(hadfork.HadforkConfigError, match="pairs.max_dr"):
        hadfork.parse_config(ds)

    def refuse(ds: dict) -> None:
        raise hadfork.HadforkConfigError("config key n_cells: value 512 is refused by the builder")

    monkeypatch.setattr(hadfork, "parse_config", refuse)
    with pytest.raises(ConfigError, match=r"datasets\.hadfork\.n_cells: value 512 is refused"):
        validate_config(copy.deepcopy(default_config))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\ndatasets:\n  rs3l: {kind: resim\nexperiments: {}\n")
    where = r"config file .*bad\.yaml, line \d+, column \d+: not valid YAML"
    with pytest.raises(ConfigError, match=where):
        compose_config([good, bad])
    listing = tmp_path / "list.yaml"
    listing.write_text("- seed\n")
    with pytest.raises(ConfigError, match=r"list\.yaml must hold a mapping of keys, got list"):
        read_config_file(listing)


SNAKEMAKE_CASES = [
    ("dataset_name_escapes", {"datasets": {"../../x": {"kind": "hadfork"}}},
     "config key datasets: name '../../x' is not allowed"),
    ("nan_lr", {"experiments": {"rs3l": {"pretrain": {"lr": NAN}}}},
     "config key experiments.rs3l.pretrain.lr: value nan is not a finite number"),
    ("lhe_command_substitution",
     {"datasets": {"rs3l": {"hard_process": {
         "source": "lhe", "lhe_pattern": "$(touch pwned){process}{split}{chunk}"}}}},
     "config key datasets.rs3l.hard_process.lhe_pattern: value '$(touch pwned)"),
    ("hadfork_n_cells_0", {"datasets": {"hadfork": {"n_cells": 0}}},
     "config key datasets.hadfork.n_cells: value 0 is not allowed"),
]  # fmt: skip


def _snakemake_dry_run(workdir: Path, overlay: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "all", "-n", "-q",
        "--configfile", str(REPO / "config" / "config.yaml"), str(overlay),
    ]  # fmt: skip
    env = {**os.environ, "JETFORGE_NO_PROGRESS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)


@pytest.mark.parametrize(
    ("overlay", "expected"), [c[1:] for c in SNAKEMAKE_CASES], ids=[c[0] for c in SNAKEMAKE_CASES]
)
def test_snakemake_stops_while_parsing(tmp_path, overlay, expected):
    """Through the workflow: validation runs while the Snakefile is parsed, so the run
    stops with the message before any job is planned; nothing is written."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(overlay))
    res = _snakemake_dry_run(tmp_path, path)
    out = res.stdout + res.stderr  # snakemake 9 prints the WorkflowError on stdout
    assert res.returncode != 0
    assert expected in out, out[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "pwned").exists()


def test_snakemake_stops_on_yaml_syntax_error(tmp_path):
    """Snakemake reads --configfile itself before any jetforge code: it stops, but its
    message ("Config file is not valid JSON or YAML") names neither file nor line."""
    path = tmp_path / "bad.yaml"
    path.write_text("datasets:\n  rs3l: {kind: resim\n")
    res = _snakemake_dry_run(tmp_path, path)
    assert res.returncode != 0 and not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- LHE files


def _events(n: int, particles: int = 4) -> list[LHEEvent]:
    def particle(i: int) -> LHEParticle:
        return LHEParticle(21, 1 if i > 1 else -1, 0, 0, 501, 502, 1.0 + i, 2.0, 3.0, 10.0, 0.0)

    return [LHEEvent([particle(i) for i in range(particles)]) for _ in range(n)]


def _edit_event(path: Path, index: int, edit: Callable[[list[str]], list[str]]) -> None:
    """Rewrite the lines (event line, particles, comments) of event ``index`` of ``path``."""
    text = path.read_text()
    start = [m.end() for m in re.finditer("<event>", text)][index]
    stop = text.index("</event>", start)
    lines = text[start:stop].strip("\n").split("\n")
    path.write_text(text[:start] + "\n" + "\n".join(edit(lines)) + "\n" + text[stop:])


def _nup(lines: list[str], nup: int) -> list[str]:
    return [f" {nup} " + lines[0].split(None, 1)[1], *lines[1:]]


def test_lhe_event_declaring_fewer_particles_than_it_has(tmp_path):
    """The extra particle line was kept as a comment, then Pythia raised IndexError."""
    path = tmp_path / "fewer.lhe"
    write_lhe(path, _events(3), LHEInit())
    _edit_event(path, 1, lambda lines: _nup(lines, 3))
    with pytest.raises(LHEError, match=re.escape(str(path)) + r": event 1: declares 3 particles "
                       r"\(NUP.*\) but has 4 particle lines"):  # fmt: skip
        read_lhe(path)


def test_lhe_event_declaring_fewer_particles_before_a_weight_block(tmp_path):
    path = tmp_path / "fewer_rwgt.lhe"
    write_lhe(path, _events(3), LHEInit())
    _edit_event(path, 2, lambda lines: [*_nup(lines, 2), "<rwgt>", "<wgt id='1'> 1.0 </wgt>",
                                        "</rwgt>"])  # fmt: skip
    with pytest.raises(LHEError, match=r"fewer_rwgt\.lhe: event 2: declares 2 particles .* "
                       r"has 4 particle lines"):  # fmt: skip
        read_lhe(path)


def test_lhe_event_declaring_more_particles_than_it_has(tmp_path):
    """A comment after the particles must not be read as one of them."""
    path = tmp_path / "more.lhe"
    write_lhe(path, _events(3), LHEInit())
    _edit_event(path, 0, lambda lines: [*_nup(lines, 5), "#pwgevent 1 2 3"])
    with pytest.raises(LHEError, match=r"more\.lhe: event 0: declares 5 particles .* has 4 "):
        read_lhe(path)


def test_lhe_comments_after_the_particles_are_kept(tmp_path):
    path = tmp_path / "comments.lhe"
    write_lhe(path, _events(2), LHEInit())
    _edit_event(path, 0, lambda lines: [*lines, "#aMCatNLO 1 2", "<mgrwt>", "</mgrwt>"])
    _, events = read_lhe(path, min_events=2)
    assert [len(e.particles) for e in events] == [4, 4]
    assert events[0].comments.startswith("#aMCatNLO")


def test_lhe_with_fewer_events_than_a_chunk(tmp_path):
    path = tmp_path / "short.lhe"
    write_lhe(path, _events(3), LHEInit())
    with pytest.raises(LHEError, match=re.escape(str(path)) + r": holds 3 events but the "
                       r"dataset's events_per_chunk is 10"):  # fmt: skip
        read_lhe(path, min_events=10)


def test_short_user_lhe_stops_the_chunk_at_its_start(tmp_path, default_config):
    """Your LHE files (source: lhe) must hold events_per_chunk events; ours are written
    with exactly that many, so only user files are counted."""
    from jetforge.datasets.resim import build_resim_chunk
    from jetforge.io.lhe import chunk_min_events

    ds = copy.deepcopy(default_config["datasets"]["rs3l"])
    assert chunk_min_events(ds) is None
    ds["hard_process"] = {"source": "lhe", "lhe_pattern": GOOD_LHE}
    lhe, out = tmp_path / "user.lhe", tmp_path / "chunk.h5"
    write_lhe(lhe, _events(3), LHEInit())
    with pytest.raises(LHEError, match=r"user\.lhe: holds 3 events but .*events_per_chunk is "
                       f"{ds['events_per_chunk']}"):  # fmt: skip
        build_resim_chunk(lhe, out, ds, "rs3l", "hbb_zh", "test", 0, base_seed=1)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


# ----------------------------------------------------------------------------- HDF5 files


def _h5(path: Path, n: int = 6, cells: bool = False, edit: Callable | None = None) -> Path:
    """A small format-4 chunk of ``n`` jets (V = 1), optionally with cells."""
    from jetforge.io.h5 import JET_COLUMNS

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5, 3)).astype(np.float32)
    mask = np.ones((n, 5), bool)
    jets = {k: np.zeros(n, dt) for k, dt in JET_COLUMNS.items()}
    jets["pair_id"] = np.arange(n)
    jets["n2"] = np.full(n, np.nan, np.float32)  # NaN by design: not a feature
    attrs = {"feature_names": ["a", "b", "c"], "class_names": ["q"], "process_names": ["p"],
             "variant_names": ["nominal"]}  # fmt: skip
    if edit is not None:
        edit(x)
    write_jet_dataset(path, x, mask, jets, attrs)
    if cells:
        with h5py.File(path, "a") as f:
            c = rng.normal(size=(n, 4, 2)).astype(np.float32)
            c[n - 1, 2, 1] = np.inf
            f["cells"], f["cells_mask"] = c, np.ones((n, 4), bool)
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_h5_is_named_where_it_is_read(tmp_path):
    from jetforge.training.data import DatasetInfo

    bad = _truncate(_h5(tmp_path / "cut.h5"))
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad)) + r": cannot be read as HDF5"):
        DatasetInfo.read(str(bad))


def test_truncated_h5_is_named_at_merge(tmp_path):
    good, bad = _h5(tmp_path / "a.h5"), _truncate(_h5(tmp_path / "b.h5"))
    out = tmp_path / "split.h5"
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad)) + r": cannot be read"):
        merge_jet_datasets([good, bad], out)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_foreign_and_missing_h5_are_named(tmp_path):
    from jetforge.training.data import DatasetInfo

    foreign = tmp_path / "notes.h5"
    foreign.write_text("not hdf5\n")
    with pytest.raises(DatasetFormatError, match=r"notes\.h5: cannot be read as HDF5"):
        DatasetInfo.read(str(foreign))
    with pytest.raises(FileNotFoundError, match=r"gone\.h5: HDF5 file does not exist"):
        DatasetInfo.read(str(tmp_path / "gone.h5"))


def test_nan_particle_feature_refused_at_merge(tmp_path):
    def poison(x: np.ndarray) -> None:
        x[3, 1, 2] = np.nan

    good, bad = _h5(tmp_path / "a.h5"), _h5(tmp_path / "b.h5", edit=poison)
    out = tmp_path / "split.h5"
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad)) + r": dataset 'particles' "
                       r"row 3 holds a non-finite value \(nan\)"):  # fmt: skip
        merge_jet_datasets([good, bad], out)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
    assert merge_jet_datasets([good, good], out) == 12  # NaN n2 is allowed


def test_inf_cell_feature_refused_at_merge(tmp_path):
    good = _h5(tmp_path / "a.h5", cells=True)
    with h5py.File(good, "a") as f:
        f["cells"][-1] = 0.0
    bad = _h5(tmp_path / "b.h5", n=7, cells=True)
    with pytest.raises(DatasetFormatError, match=r"b\.h5: dataset 'cells' row 6 holds a "
                       r"non-finite value \(inf\)"):  # fmt: skip
        merge_jet_datasets([good, bad], tmp_path / "split.h5")


# ----------------------------------------------------------------------------- fine-tuning


def test_n_train_larger_than_the_split_stops_the_finetuning_at_its_start():
    from jetforge.training.data import subsample

    rows, labels = np.arange(5), np.zeros(5, np.int8)
    with pytest.raises(ValueError, match=r"n_train=10 labelled jets requested for task 'qg' "
                       r"\(.*\) but only 5 are available; lower finetune\.n_train"):  # fmt: skip
        subsample(rows, labels, 10, 0, what="task 'qg' (nominal jets of val.h5)")
    assert len(subsample(rows, labels, 5, 0)[0]) == 5


def test_a_bad_engine_value_is_reported_once_and_not_as_unknown(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["rs3l"]["pretrain"]["lr"] = -1
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).count("\n  - ") == 1, str(err.value)
    assert "pretrain.lr: value -1 is not allowed" in str(err.value)


def test_config_checker_names_the_yaml_error_snakemake_does_not(tmp_path):
    """``python -m jetforge.config`` composes and checks as the workflow does; for a
    syntax error it names file and line (Snakemake's own message names neither)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  rs3l: {kind: resim\n")
    cmd = [sys.executable, "-m", "jetforge.config", str(REPO / "config" / "config.yaml"), str(bad)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1
    assert re.search(r"bad\.yaml, line \d+, column \d+: not valid YAML", res.stderr), res.stderr
    ok = subprocess.run(cmd[:-1], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("valid:"), ok.stderr
