"""A new method or backbone is its module plus one registry line: nothing else knows it.

Registered at run time here (as a plugin or a new module would be), a toy method passes
config validation and trains through the one pre-training driver."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from jetforge.config import ConfigError, validate_config
from jetforge.methods import METHODS
from jetforge.registry import Registry
from jetforge.training.pretrain import run_pretrain

from test_jbot import write_jets


class MeanNorm(nn.Module):
    """Toy method: pull every jet embedding towards the origin (no views, no teacher)."""

    sampler = "jets"

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: dict) -> MeanNorm:
        return cls(backbone)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.backbone(x, mask).pow(2).mean()}


def test_a_registered_method_is_valid_config_and_trains(
    default_config, tmp_path, monkeypatch, one_thread
):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["jbot"]["pretrain"]["method"] = "mean_norm"
    with pytest.raises(ConfigError, match="'mean_norm' is not one of"):
        validate_config(copy.deepcopy(cfg))
    monkeypatch.setitem(METHODS, "mean_norm", MeanNorm)
    validate_config(cfg)  # the schema's enum is the registry

    h5 = str(write_jets(tmp_path / "pre.h5", {"qcd_zjet": 24, "hbb_zh": 24}))
    exp = {"backbone": {"name": "vit", "d_model": 16, "n_blocks": 1, "n_heads": 2,
                        "standardise_inputs": True},
           "pretrain": {"method": "mean_norm", "batch_size": 8, "epochs": 1,
                        "lr": 1e-3}}  # fmt: skip
    run_pretrain(h5, str(tmp_path / "out"), exp, None, repeat=0, seed=1, device="cpu")
    payload = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    assert payload["method"] == "mean_norm"
    assert "input_shift" in payload["backbone_cfg"]  # the ViT fitted its own standardisation


def test_registry_imports_lazily_and_refuses_silent_overrides():
    reg = Registry("thing", {"a": "jetforge.experiment:setup_id"})
    assert "a" in reg and list(reg) == ["a"]
    from jetforge.experiment import setup_id

    assert reg["a"] is setup_id
    with pytest.raises(KeyError, match=r"unknown thing 'b'; registered: \['a'\]"):
        reg["b"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", len)
    assert reg.register("a", setup_id) is setup_id
