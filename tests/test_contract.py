"""The contract every registered block, skip and skip attention must meet, in 2D and 3D.

Parametrised over the registries themselves: a block added to the registry is
covered here without new test code.
"""
from __future__ import annotations

import pytest
import torch
import yaml

from nasseg.arch import arch_id, build_model, load_arch
from nasseg.blocks import BLOCKS
from nasseg.errors import ConfigError
from nasseg.skips import ATTENTIONS, SKIPS

DIMS = (2, 3)
SIZE = {2: (16, 16), 3: (8, 8, 8)}


def _assert_healthy(module: torch.nn.Module, out: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(out.shape) == shape
    assert torch.isfinite(out).all()
    (out.float() ** 2).mean().backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"


def _tiny_arch(dims: int, stage_extra: dict) -> dict:
    stages = [{"width": 4, "decoder_depth": 1, **stage_extra}, {"width": 8, **stage_extra}]
    for s in stages[1:]:
        s.pop("skip", None), s.pop("skip_attention", None)
    return {"spatial_dims": dims, "in_channels": 2, "out_channels": 3, "stages": stages}


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", BLOCKS.names())
def test_block_contract(name: str, dims: int) -> None:
    torch.manual_seed(0)
    cls = BLOCKS.get(name)
    params = cls.Params()
    c_in, c_out = (4, 8) if cls.changes_width else (8, 8)
    block = cls(spatial_dims=dims, in_channels=c_in, out_channels=c_out, params=params, depth=2)
    out = block(torch.randn(2, c_in, *SIZE[dims]))
    _assert_healthy(block, out, (2, c_out, *SIZE[dims]))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", SKIPS.names())
@pytest.mark.parametrize("up", ["interp_conv", "transposed"])
def test_skip_contract(name: str, dims: int, up: str) -> None:
    torch.manual_seed(0)
    skip = SKIPS.get(name)(spatial_dims=dims, skip_channels=4, deep_channels=8,
                           params=SKIPS.get(name).Params(), up=up)
    half = tuple(n // 2 for n in SIZE[dims])
    out = skip(torch.randn(2, 4, *SIZE[dims]), torch.randn(2, 8, *half))
    _assert_healthy(skip, out, (2, skip.out_channels, *SIZE[dims]))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", ATTENTIONS.names())
def test_attention_contract(name: str, dims: int) -> None:
    torch.manual_seed(0)
    att = ATTENTIONS.get(name)(spatial_dims=dims, channels=4, params=ATTENTIONS.get(name).Params())
    out = att(torch.randn(2, 4, *SIZE[dims]))
    _assert_healthy(att, out, (2, 4, *SIZE[dims]))


COMPONENTS = ([("block", n) for n in BLOCKS.names()] + [("skip", n) for n in SKIPS.names()]
              + [("skip_attention", n) for n in ATTENTIONS.names()])


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("field,name", COMPONENTS)
def test_component_in_network(field: str, name: str, dims: int, tmp_path) -> None:
    """Every component builds into a whole network whose config round-trips through YAML."""
    raw = _tiny_arch(dims, {field: {"type": name}})
    cfg = load_arch(raw)
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    again = load_arch(path)
    assert again == cfg and arch_id(again) == arch_id(cfg)
    model = build_model(cfg).train()
    out = model(torch.randn(2, 2, *SIZE[dims]))
    _assert_healthy(model, out, (2, 3, *SIZE[dims]))


@pytest.mark.parametrize("field,name", COMPONENTS)
def test_unknown_key_rejected(field: str, name: str) -> None:
    raw = _tiny_arch(2, {field: {"type": name, "no_such_param": 1}})
    with pytest.raises(ConfigError, match=rf"stages\.0\.{field}\.no_such_param: unknown key 'no_such_param'"):
        load_arch(raw)
