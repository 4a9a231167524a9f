"""One backbone interface for every pre-training method (issue 16).

Every method of ``METHODS`` takes one optimisation step on a small ParT (pair methods on
two views of random jets) and trains the backbone; a backbone lacking a capability a
method needs is refused with the capability and the backbone named; each registered
backbone has the attributes its declared capabilities promise; ParT's token masking hides
everything of a masked particle; and two methods that used to need another backbone
(jBOT: the ViT; the fork autoencoder: tracks + cells) pre-train on ParT end to end.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from toyfiles import write_toy_file

from jetforge.config import ConfigError, validate_config
from jetforge.jets.features import RS3L_FEATURES
from jetforge.methods import INIT_BACKBONE_METHODS, METHOD_NEEDS, METHODS
from jetforge.models import BACKBONE_CAPABILITIES, BACKBONES
from jetforge.models.edgeconv import EdgeConvNet
from jetforge.models.interface import ATTRIBUTES, BackboneCapabilityError, capabilities
from jetforge.models.part import ParticleTransformer
from jetforge.models.vit import ParticleViT
from jetforge.training.pretrain import method_sampler, run_pretrain

from test_jbot import rs3l_jets, write_jets

pytestmark = pytest.mark.usefixtures("one_thread")

F = len(RS3L_FEATURES)
TINY_PART = dict(embed_dims=[16, 32, 16], pair_embed_dims=[8, 8], num_heads=2, num_layers=2,
                 num_cls_layers=1, dropout=0.0, attn_dropout=0.0,
                 activation_dropout=0.0)  # fmt: skip

#: ``pretrain`` block of each method for the tiny ParT: a new method adds its line here
PRETRAIN = {
    "simclr": {"tau": 0.1},
    "hadfork_contrastive": {"tau": 0.1},
    "ae_vicreg": {"decoder_hidden": [8]},
    "jbot": {"feature_names": "rs3l"},
    "mpm": {"target": "regression", "head_heads": 2},
    "jepa": {"predictor": {"dim": 8, "num_heads": 2, "num_layers": 1, "num_cls_layers": 1}},
}


def tiny_part() -> ParticleTransformer:
    return ParticleTransformer(in_dim=F, **TINY_PART)


def _batch(kind: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Single jets, or two views of them (kinematics smeared by 5 %) for pair methods."""
    x, m = rs3l_jets(8, 12, seed=seed)
    if kind == "jets":
        return x, m
    g = torch.Generator().manual_seed(seed + 1)
    x_b = torch.where(m[..., None], x + 0.05 * torch.randn(x.shape, generator=g), x)
    return x, m, x_b, m.clone()


def test_every_method_is_listed_here() -> None:
    assert set(PRETRAIN) == set(METHODS), "add the new method's tiny pretrain block above"


@pytest.mark.parametrize("name", sorted(PRETRAIN))
def test_one_step_of_every_method_on_part(name: str) -> None:
    torch.manual_seed(0)
    model = METHODS[name].from_config(tiny_part(), PRETRAIN[name]).train()
    kind = method_sampler(name, ("particles",))  # what run_pretrain feeds on ParT
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    out = model(*_batch(kind))
    assert torch.isfinite(out["loss"]), f"{name}: loss {out['loss']}"
    out["loss"].backward()
    grads = dict(model.backbone.named_parameters())
    for part in ("embed.", "pair_embed.", "blocks.0.", "blocks.1."):
        g = [p.grad for n, p in grads.items() if n.startswith(part) and p.grad is not None]
        assert g, f"{name}: no gradient reached the backbone's {part}"
        assert all(torch.isfinite(t).all() for t in g), f"{name}: non-finite gradient in {part}"
        assert any(t.abs().sum() > 0 for t in g), f"{name}: zero gradient in {part}"
    opt.step()
    if hasattr(model, "on_step"):
        model.on_step(1, 10)
    moved = [n for n, p in model.backbone.named_parameters() if not torch.equal(before[n], p)]
    assert moved, f"{name}: the optimiser step left the backbone unchanged"


def test_missing_capabilities_are_refused_by_name() -> None:
    vit = ParticleViT(in_dim=F, d_model=16, n_blocks=1, n_heads=2)
    with pytest.raises(BackboneCapabilityError, match=r"'jepa' needs .*\['pair_bias'\].*'vit'"):
        METHODS["jepa"].from_config(vit, PRETRAIN["jepa"])
    edge = EdgeConvNet(in_dim=F, embed=(8,), k=2, n_conv=1, conv_dim=8, encoder=(8,))
    for name in ("jbot", "mpm"):
        with pytest.raises(BackboneCapabilityError, match=r"\['tokens'.*'edgeconv'.*only"):
            METHODS[name].from_config(edge, PRETRAIN[name])
    with pytest.raises(BackboneCapabilityError, match=r"Backbones with all of .*: \['part'\]"):
        METHODS["jepa"].from_config(edge, PRETRAIN["jepa"])
    METHODS["simclr"].from_config(edge, {})  # the jet embedding is all SimCLR needs


def test_config_refuses_a_method_its_backbone_cannot_serve(default_config: dict) -> None:
    cfg = copy.deepcopy(default_config)
    exp = next(e for e in cfg["experiments"].values() if e["pretrain"].get("method") == "jbot")
    exp["backbone"] = {"name": "edgeconv"}
    with pytest.raises(
        ConfigError,
        match=r"backbone.name: pretrain.method 'jbot' needs "
        r"backbone capabilities \['tokens'.*'edgeconv' lacks",
    ):
        validate_config(cfg)


def test_ae_config_keys_are_in_the_schema() -> None:
    from jetforge.config import load_schema
    from jetforge.methods.ae_vicreg import CONFIG_KEYS

    assert set(CONFIG_KEYS) <= set(load_schema()["$defs"]["pretrain_ae_vicreg"]["properties"])


def test_declared_capabilities_have_their_attributes() -> None:
    for name in METHODS:
        assert METHODS[name].needs == METHOD_NEEDS[name], name
        supports = getattr(METHODS[name], "supports_init_backbone", False)
        assert supports == (name in INIT_BACKBONE_METHODS), name
    for name in BACKBONES:
        net = BACKBONES[name]()
        assert net.capabilities == BACKBONE_CAPABILITIES[name], name
        for cap in capabilities(net):
            missing = [a for a in ATTRIBUTES[cap] if not hasattr(net, a)]
            assert not missing, f"backbone {name!r} declares {cap!r} but lacks {missing}"
    assert {"tokens", "cls", "token_masking", "pair_bias"} <= capabilities(tiny_part())


def test_part_token_masking_hides_the_masked_particles() -> None:
    """Nothing of a masked particle reaches the network: garbage in its features (even in
    training mode, where the batch norms use batch statistics) changes no output."""
    torch.manual_seed(3)
    net = tiny_part().train()
    x, m = rs3l_jets(6, 10, seed=4)
    replace = m & (torch.rand(m.shape) < 0.4)
    replace[:, 0] = False  # one visible particle per jet
    token = torch.randn(16)
    x_garbage = torch.where(replace[..., None], 50 * torch.randn(x.shape), x)
    tok, cls = net.encode(x, m, replace, token)
    tok2, cls2 = net.encode(x_garbage, m, replace, token)
    torch.testing.assert_close(tok2, tok, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cls2, cls, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net.tokens(x, m, replace, token), tok, rtol=1e-5, atol=1e-5)
    plain_tok, _ = net.encode(x, m)
    assert not torch.allclose(plain_tok, tok), "masking changed nothing"
    assert (tok[~m] == 0).all() and torch.isfinite(tok).all()


def write_pairs(path: Path, n: dict[str, int], P: int = 12, seed: int = 0) -> Path:
    """Format-4 file of RS3L toy jets with two variants per hard event (``nominal`` and a
    ``seed`` copy with 5 % smeared features), rows in variant order per event."""
    xs, ms, proc = [], [], []
    for k, count in enumerate(n.values()):
        x, m = rs3l_jets(count, P, seed=seed + k)
        x = torch.where(m[..., None], x * (1 + 0.3 * k), 0.0)
        x_b = torch.where(m[..., None], x * (1 + 0.05 * torch.randn(x.shape)), 0.0)
        xs.append(torch.stack([x, x_b], 1).flatten(0, 1).numpy())
        ms.append(torch.stack([m, m], 1).flatten(0, 1).numpy())
        proc += [k] * (2 * count)
    return write_toy_file(path, np.concatenate(xs), np.concatenate(ms),
                          np.asarray(proc, np.int8), list(n), ("nominal", "seed"))  # fmt: skip


@pytest.mark.parametrize("method", ["ae_vicreg", "jbot"])
def test_pretrain_on_part_end_to_end(tmp_path: Path, method: str) -> None:
    """run_pretrain on a particles-only file: the fork autoencoder on pairs (``"pairs"``
    sampler, its validation through loss_from_embeddings), jBOT on single jets."""
    procs = {"qcd_zjet": 12, "hbb_zh": 12}
    if method == "jbot":
        h5, augset = write_jets(tmp_path / "jets.h5", procs), None
    else:
        h5, augset = write_pairs(tmp_path / "pairs.h5", procs), "seed"
    exp = {"backbone": {"name": "part", **TINY_PART},
           "pretrain": {"method": method, **PRETRAIN[method], "processes": list(procs),
                        "augsets": {"seed": ["seed"]}, "batch_size": 8, "epochs": 1,
                        "lr": 1e-3, "val_fraction": 0.25}}  # fmt: skip
    out = tmp_path / "out"
    run_pretrain(str(h5), str(out), exp, augset, repeat=0, seed=1, device="cpu")
    payload = torch.load(out / "model.pt", weights_only=False)
    assert payload["method"] == method and payload["backbone_cfg"]["name"] == "part"
    hist = (out / "history.csv").read_text().splitlines()
    head, last = hist[0].split(","), hist[-1].split(",")
    row = dict(zip(head, last, strict=True))
    val = row.get("val_loss") or row.get("val_loss_cls")
    assert val and np.isfinite(float(val)), row
