"""LoRA (Rieck et al. §4): starts at the pre-trained function, trains ~1 % of the weights."""

from __future__ import annotations

import torch

from jetforge.models.lora import apply_lora
from jetforge.models.registry import build_backbone


def _jets(n=6, p=12, f=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, f, generator=g)
    mask = torch.arange(p)[None, :] < torch.randint(3, p + 1, (n, 1), generator=g)
    return x * mask[..., None], mask


def test_lora_starts_at_pretrained_function_and_only_adapters_train():
    torch.manual_seed(0)
    # the edge convolution reads lin.weight directly: LoRA must adapt .weight itself
    bb = build_backbone({"name": "edgeconv", "in_dim": 15, "embed": [16], "k": 4, "n_conv": 2,
                         "conv_dim": 16, "encoder": [8]})  # fmt: skip
    bb.eval()
    x, m = _jets()
    before = bb(x, m).detach()
    n_base = sum(p.numel() for p in bb.parameters())
    params = apply_lora(bb, rank=1, alpha=1.0)
    assert torch.equal(bb(x, m).detach(), before)  # B = 0 at the start
    trainable = [p for p in bb.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in params}
    n_lora = sum(p.numel() for p in params)
    assert 0 < n_lora < 0.2 * n_base
    # a step on the adapters changes the function; the base weights stay put
    base = {k: v.clone() for k, v in bb.state_dict().items() if k.endswith("original")}
    opt = torch.optim.SGD(params, lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        bb(x, m).pow(2).sum().backward()
        opt.step()
    assert not torch.allclose(bb(x, m).detach(), before)
    assert all(torch.equal(bb.state_dict()[k], v) for k, v in base.items())

