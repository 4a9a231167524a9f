"""JP-JEPA: sequencing, block masking, EMA teacher, KoLeo / SIGReg, overfit and resume."""

from __future__ import annotations

import copy
import csv
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.integrate import quad

from jetforge.evaluation.ssl_metrics import auc_emb, effective_rank
from jetforge.jets.features import RS3L_FEATURES
from jetforge.methods import METHODS
from jetforge.methods.ema import ema_momentum as _ema_momentum
from jetforge.methods.jepa import JPJEPA
from jetforge.methods.jepa_masking import compact, greedy_sequence, sample_blocks
from jetforge.methods.jepa_probes import pid_labels
from jetforge.methods.koleo_loss import KoLeoLoss
from jetforge.methods.sigreg_loss import SIGRegLoss, epps_pulley, epps_pulley_exact
from jetforge.models.part import ParticleTransformer
from jetforge.models.registry import load_backbone
from jetforge.training.engine import EngineConfig, fit
from jetforge.training.pretrain import run_pretrain

TINY = dict(embed_dims=[16, 32, 16], pair_embed_dims=[8, 8], num_heads=2, num_layers=2,
            num_cls_layers=1, dropout=0.0, attn_dropout=0.0, activation_dropout=0.0)  # fmt: skip
TINY_PRED = dict(dim=16, num_heads=2, num_layers=1, num_cls_layers=1)
COL = {f: i for i, f in enumerate(RS3L_FEATURES)}


pytestmark = pytest.mark.usefixtures("one_thread")


def rs3l_jets(B: int, P: int, seed: int = 0, n_min: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pT-sorted jets with consistent RS3L kinematics and one-hot particle types."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(n_min, P + 1, (B,), generator=g)
    mask = torch.arange(P)[None] < n[:, None]
    pt = (torch.rand(B, P, generator=g) * 80 + 1).sort(dim=1, descending=True).values
    x = torch.randn(B, P, len(RS3L_FEATURES), generator=g)
    deta, dphi = 0.3 * torch.randn(B, P, generator=g), 0.3 * torch.randn(B, P, generator=g)
    x[..., COL["log_pt"]], x[..., COL["deta"]], x[..., COL["dphi"]] = pt.log(), deta, dphi
    kind = torch.randint(0, 5, (B, P), generator=g)
    flags = ["is_photon", "is_muon", "is_electron", "is_ch", "is_nh"]
    for k, f in enumerate(flags):
        x[..., COL[f]] = (kind == k).float()
    sign = torch.sign(torch.randn(B, P, generator=g))
    x[..., COL["charge"]] = torch.where((kind == 1) | (kind == 2) | (kind == 3), sign, 0.0)
    return x * mask[..., None], mask


def tiny_jepa(**kw: object) -> JPJEPA:
    return JPJEPA(ParticleTransformer(**TINY), predictor=TINY_PRED, **kw)


# ----------------------------------------------------------------------------- masking


def test_greedy_sequence_hand_example() -> None:
    # eta positions 0, 0.9, 0.2, 1.0, 0.5 (phi 0); slot 5 is padding at eta = 0.21
    eta = torch.tensor([[0.0, 0.9, 0.2, 1.0, 0.5, 0.21]])
    phi = torch.zeros_like(eta)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    order = greedy_sequence(eta, phi, mask, start=torch.tensor([0]))
    # from 0: nearest 0.2 (slot 2), then 0.5 (4), then 0.9 (1), then 1.0 (3); padding last
    assert order.tolist() == [[0, 2, 4, 1, 3, 5]]
    # phi distance wraps around: +3.1 and -3.1 are 0.083 apart, closer than 0.5
    order = greedy_sequence(torch.zeros(1, 3), torch.tensor([[3.1, 2.6, -3.1]]),
                            torch.ones(1, 3, dtype=torch.bool), torch.tensor([0]))  # fmt: skip
    assert order.tolist() == [[0, 2, 1]]


@pytest.mark.parametrize("ctx", [(0.4, 0.7), None])
def test_target_block_contiguous_with_ratio(ctx: tuple[float, float] | None) -> None:
    n = torch.tensor([2, 3, 7, 20, 50, 100] * 20)
    tgt, cont = sample_blocks(n, 100, (0.25, 0.35), ctx, torch.Generator().manual_seed(0))
    for b in range(n.numel()):
        k = int(n[b])
        pos = torch.nonzero(tgt[b]).flatten()
        assert pos.numel() >= 1 and int(pos.max()) < k
        assert (pos.diff() == 1).all(), "target is one contiguous block"
        lo, hi = max(1, math.floor(0.25 * k + 0.5)), min(k - 1, math.floor(0.35 * k + 0.5))
        assert lo <= pos.numel() <= max(hi, lo)
        c = torch.nonzero(cont[b]).flatten()
        assert c.numel() >= 1 and not (tgt[b] & cont[b]).any() and int(c.max()) < k
        if ctx is None:
            assert c.numel() + pos.numel() == k
        else:  # a contiguous block of round(r_c n) slots (> target) minus the target
            inside = (torch.arange(100) >= c.min()) & (torch.arange(100) <= c.max())
            assert (cont[b] | tgt[b])[inside].all(), "context block has holes outside the target"
            assert c.numel() <= max(math.floor(0.7 * k + 0.5), pos.numel() + 1)
    idx, m = compact(cont)
    assert m.sum(1).tolist() == cont.sum(1).tolist()
    assert all(cont[b, idx[b, m[b]]].all() for b in range(n.numel()))


def test_pid_labels_eight_classes() -> None:
    names = ["charge", "is_electron", "is_muon", "is_photon", "is_ch", "is_nh"]
    rows = [[-1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [-1, 0, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0],
            [0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 1, 0], [-1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0]]  # fmt: skip
    idx = {"charge": 0, "electron": 1, "muon": 2, "photon": 3, "charged_hadron": 4,
           "neutral_hadron": 5}  # fmt: skip
    assert len(names) == 6
    assert pid_labels(torch.tensor(rows, dtype=torch.float), idx).tolist() == [
        0, 1, 2, 3, 4, 5, 6, 7, -100]  # fmt: skip


# ----------------------------------------------------------------------------- teacher


def ema_momentum(step: int, total: int) -> float:
    """JP-JEPA's tau after optimiser step ``step`` (1-based) of ``total`` (Table 7)."""
    return _ema_momentum(step - 1, total, 0.9995, 0.99999, schedule="linear")


def test_ema_update_exact_and_schedule_endpoints() -> None:
    assert ema_momentum(1, 500) == 0.9995 and ema_momentum(500, 500) == 0.99999
    assert ema_momentum(250, 499) == pytest.approx(0.9995 + 0.5 * (0.99999 - 0.9995))
    taus = [ema_momentum(s, 10) for s in range(1, 11)]
    assert all(b > a for a, b in itertools.pairwise(taus))
    torch.manual_seed(0)
    model = tiny_jepa()
    assert not model.teacher.training and model.backbone.training
    for p in model.backbone.parameters():  # make student != teacher
        p.data.add_(torch.randn_like(p))
    before = copy.deepcopy(model.teacher.state_dict())
    model.on_step(3, 10)
    tau = ema_momentum(3, 10)
    assert float(model.ema_tau) == tau
    params = zip(model.teacher.named_parameters(), model.backbone.parameters(), strict=True)
    for (name, t), s in params:
        assert torch.equal(t, before[name] * tau + (1 - tau) * s), name
        assert not t.requires_grad
    for (name, t), s in zip(model.teacher.named_buffers(), model.backbone.buffers(), strict=True):
        assert torch.equal(t, s), name
    # a real step: the teacher never receives gradients, the engine hook moves it
    x, mask = rs3l_jets(8, 10)
    model(x, mask)["loss"].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    model.train()
    assert not model.teacher.training


# ----------------------------------------------------------------------------- regularisers


def test_koleo_matches_explicit_loop() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(13, 5, generator=g)
    zn = z / z.norm(dim=1, keepdim=True)
    want = 0.0
    for i in range(13):
        want -= math.log(min(float((zn[i] - zn[j]).norm()) for j in range(13) if j != i))
    assert KoLeoLoss()(z).item() == pytest.approx(want / 13, rel=1e-5)


def test_sigreg_against_quadrature() -> None:
    g = torch.Generator().manual_seed(1)
    for x in (torch.randn(64, generator=g), 1.5 * torch.rand(64, generator=g) + 0.5):
        xs = x.double().numpy()

        def integrand(t: float, xs: np.ndarray = xs) -> float:
            ecf = complex(np.cos(t * xs).mean(), np.sin(t * xs).mean())
            return abs(ecf - math.exp(-t * t / 2)) ** 2 * math.exp(-t * t / 2)

        full = 64 * quad(integrand, -np.inf, np.inf, limit=200)[0]
        assert epps_pulley_exact(x).item() == pytest.approx(full, rel=1e-8)
        fine = epps_pulley(x[:, None], t_max=8.0, n_points=801)
        assert fine.item() == pytest.approx(full, rel=1e-4)
        # the reference settings (17 knots on [0, 3]) are within 1 % here
        assert epps_pulley(x[:, None]).item() == pytest.approx(full, rel=1e-2)
    # sliced: an isotropic Gaussian batch scores far below a collapsed / shifted one
    z = torch.randn(256, 8, generator=g)
    reg = SIGRegLoss(num_slices=64)
    good = reg(z, torch.Generator().manual_seed(2))
    bad = reg(z * torch.tensor([3.0] + [0.1] * 7) + 1.0, torch.Generator().manual_seed(2))
    assert good < 2.0 < bad


def test_ssl_metrics_limits() -> None:
    # App. C: effective rank in [1, D], AUC_emb = 1 for collapse, (D+1)/(2D) for isotropy
    rng = np.random.default_rng(0)
    iso = np.linalg.qr(rng.normal(size=(64, 64)))[0][:, :8] * 8.0  # orthogonal, equal spectra
    assert effective_rank(iso) == pytest.approx(8.0, rel=0.02)
    assert auc_emb(iso) == pytest.approx(9 / 16, rel=0.02)
    line = rng.normal(size=(50, 1)) * rng.normal(size=(1, 8))
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-6) and auc_emb(line) == 1.0


# ----------------------------------------------------------------------------- method


def test_forward_terms_drops_small_jets_and_feature_dropout() -> None:
    torch.manual_seed(0)
    model = tiny_jepa(regularizer="sigreg")
    x, mask = rs3l_jets(10, 12, n_min=1)
    mask[0] = False
    mask[0, 0] = True  # a one-particle jet: dropped, never an error
    out = model(x, mask)
    assert {"loss", "local", "global", "sigreg", "pid", "pid_acc", "td", "physics"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())
    assert model.lambda_reg == 0.05
    single = model(x[:1], mask[:1])
    assert set(single) == {"loss"} and single["loss"].item() == 0.0
    full = tiny_jepa(pid_dropout=1.0, td_dropout=0.0)
    dropped = full._drop_features(x, None)
    pid_cols = [COL[f] for f in ("charge", "is_photon", "is_muon", "is_electron", "is_ch", "is_nh")]
    assert (dropped[..., pid_cols] == 0).all()
    keep = [c for c in range(len(RS3L_FEATURES)) if c not in pid_cols]
    assert torch.equal(dropped[..., keep], x[..., keep])
    # eval: fixed masks, so the validation loss is reproducible
    model.eval()
    with torch.no_grad():
        assert model(x, mask)["loss"] == model(x, mask)["loss"]


class _Jets:
    def __init__(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        self.x, self.mask = x, mask

    def to(self, device: object, non_blocking: bool = False) -> _Jets:
        return self

    def __len__(self) -> int:
        return self.x.shape[0]


def test_overfit_64_jets(tmp_path: Path) -> None:
    x, mask = rs3l_jets(64, 12, seed=5)

    def batches(epoch: int, start: int) -> Iterator[_Jets]:
        for i in range(start, 2):
            yield _Jets(x[32 * i : 32 * (i + 1)], mask[32 * i : 32 * (i + 1)])

    torch.manual_seed(0)
    model = tiny_jepa(probes=False)
    state = fit(
        model, [{"params": [p for p in model.parameters() if p.requires_grad]}],
        lambda m, b: m(b.x, b.mask), batches, 2,
        EngineConfig(epochs=12, lr=3e-3, checkpoint_every=10_000), torch.device("cpu"),
        tmp_path / "ck.pt", tmp_path / "h.csv",
    )  # fmt: skip
    first, last = state.history[0], state.history[-1]
    assert last["loss"] < first["loss"] / 2, (first["loss"], last["loss"])
    assert last["local"] < first["local"] / 1.5 and last["global"] < first["global"] / 1.5
    assert first["ema_tau"] < last["ema_tau"] < 0.99999
    assert float(model.ema_tau) == 0.99999  # the last update used the final tau


# ----------------------------------------------------------------------------- pipeline


def write_rs3l_format4(path: Path, n_jets: int, P: int = 10, seed: int = 0) -> Path:
    """A format-4 file (one variant) with RS3L feature names and two processes."""
    x, mask = rs3l_jets(n_jets, P, seed=seed, n_min=1)
    proc = np.arange(n_jets) % 2
    with h5py.File(path, "w") as f:
        f.create_dataset("particles", data=x.numpy(), chunks=(7, P, x.shape[-1]))
        f.create_dataset("mask", data=mask.numpy(), chunks=(7, P))
        g = f.create_group("jets")
        for k, v in (("process", proc), ("label", proc), ("variant", 0 * proc)):
            g.create_dataset(k, data=v.astype(np.int8))
        for k in ("pair_id", "event", "chunk", "parton_pid"):
            g.create_dataset(k, data=np.arange(n_jets))
        for k in ("pt", "eta", "phi", "mass", "n2"):
            g.create_dataset(k, data=np.ones(n_jets, np.float32))
        f.attrs["feature_names"] = list(RS3L_FEATURES)
        f.attrs["class_names"] = ["qcd", "hbb"]
        f.attrs["process_names"] = ["qcd_zjet", "hbb_zh"]
        f.attrs["variant_names"] = ["nominal"]
    return path


EXP = {
    "backbone": {"name": "part", **TINY},
    "pretrain": {
        "method": "jepa", "processes": None, "predictor": TINY_PRED,
        "target_ratio": [0.25, 0.35], "context_ratio": [0.4, 0.7], "ema": [0.9995, 0.99999],
        "regularizer": "koleo", "batch_size": 8, "epochs": 2, "lr": 1e-3, "val_fraction": 0.2,
        "checkpoint_every": 3,
    },
}  # fmt: skip


def _history(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in [k for k in r if k.endswith("_per_s")]:  # throughput: wall-clock timings
            r.pop(k)
    return rows


def test_pretrain_resume_after_kill_is_bit_identical(tmp_path: Path) -> None:
    assert METHODS["jepa"] is JPJEPA and JPJEPA.sampler == "jets"
    h5 = str(write_rs3l_format4(tmp_path / "pretrain.h5", 48))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), EXP, "none", repeat=0, seed=11, device="cpu")

    class Kill(RuntimeError):
        pass

    def kill_after_5(state) -> None:
        if state.step == 5:
            raise Kill

    # ~38 training jets / 8 = 4 steps per epoch: killed mid-epoch 2, 2 steps after a checkpoint
    with pytest.raises(Kill):
        run_pretrain(h5, str(killed), EXP, "none", repeat=0, seed=11, device="cpu",
                     after_step=kill_after_5)  # fmt: skip
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    run_pretrain(h5, str(killed), EXP, "none", repeat=0, seed=11, device="cpu")
    a = torch.load(ref / "model.pt", weights_only=False)
    b = torch.load(killed / "model.pt", weights_only=False)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    ca = torch.load(ref / "checkpoint.pt", weights_only=False)["model"]
    cb = torch.load(killed / "checkpoint.pt", weights_only=False)["model"]
    for k in ca:  # teacher, predictor and probes too
        assert torch.equal(ca[k], cb[k]), k
    assert _history(ref / "history.csv") == _history(killed / "history.csv")
    rows = _history(ref / "history.csv")
    assert {"loss", "local", "global", "koleo", "val_loss", "ema_tau"} <= set(rows[0])
    backbone, payload = load_backbone(ref / "model.pt")
    assert isinstance(backbone, ParticleTransformer) and payload["method"] == "jepa"
