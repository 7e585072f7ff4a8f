"""Architecture configs: presets, ids, published counts, validation messages."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from nasseg.arch import arch_id, build_model, load_arch, preset_names
from nasseg.cli import main
from nasseg.cost import CostCache, profile
from nasseg.errors import ConfigError
from nasseg.layers import depth_to_space, space_to_depth

# the authors' GLIMS (github yaziciz/GLIMS, feature size 24, 4 -> 3 channels, 96^3) has 47,163,349;
# the preset's comment lists what makes up the +15,205 here
GLIMS_PUBLISHED, GLIMS_PARAMS = 47_163_349, 47_178_554

# ARCHITECTURES.md: measured on the authors' code (fvcore 0.1.5, ptflops 0.7.5) at 1x3x256x256
PUBLISHED = {
    "cmunext": (3_149_185, 7_409_033_216, 7_316_512_768),
    "cmunext_s": (417_505, 1_088_471_040, 1_048_297_472),
    "cmunext_l": (8_286_721, 17_181_179_904, 17_006_526_464),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_counts_to_the_unit(name: str) -> None:
    cost = profile(name, (1, 3, 256, 256), latency=False, cache=False)
    assert (cost.params, cost.macs, cost.flops) == PUBLISHED[name]


def test_profile_cli_json(capsys) -> None:
    assert main(["profile", "cmunext", "--input", "1,3,256,256", "--json", "--no-latency"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["params"], out["macs"], out["flops"]) == PUBLISHED["cmunext"]
    assert out["versions"]["counter"] == "meta"
    assert main(["profile", "cmunext_s", "--input", "1,3,64,64", "--json", "--no-latency", "--counter",
                 "reference", "--no-cache"]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert ref["versions"]["ptflops_backend"] == "pytorch" and ref["macs"] == 68_029_440
    assert main(["profile", "cmunext_s", "--input", "1,3,32,32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] is None  # counts only, unless asked
    assert main(["profile", "cmunext_s", "--input", "1,3,32,32", "--json", "--latency", "--warmup", "0",
                 "--repeats", "1", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > 0


def test_presets_cli_lists_presets(capsys) -> None:
    assert set(preset_names()) >= {"unet", "cmunext", "cmunext_s", "cmunext_l", "segnetr", "glims"}
    assert main(["presets", "cmunext_s", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["preset"], row["params"], row["macs"], row["input"]) == ("cmunext_s", 417_505, 1_088_471_040,
                                                                        [1, 3, 256, 256])
    assert main(["presets", "cmunxt"]) == 2
    assert "did you mean 'cmunext'" in capsys.readouterr().err


def test_presets_cli_lists_every_preset(capsys) -> None:
    assert main(["presets", "--json"]) == 0
    rows = {r["preset"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(preset_names())
    assert rows["glims"]["input"] == [1, 4, 96, 96, 96] and rows["glims"]["params"] == GLIMS_PARAMS


def test_glims_3d_preset_structure_and_deep_supervision() -> None:
    cfg = load_arch("glims")
    assert (cfg.spatial_dims, cfg.in_channels, cfg.out_channels) == (3, 4, 3)
    assert [s.block.type for s in cfg.stages] == ["dacb"] * 4 + ["swin"] * 2
    assert cfg.stages[3].extra.block.type == "swin"  # the Swin layers beside the 192-channel stage
    assert cfg.min_input_multiple() == 32  # six resolutions: 96^3 -> 3^3 as in GLIMS
    with torch.device("meta"):
        params = sum(p.numel() for p in build_model(cfg).parameters())
    assert params == GLIMS_PARAMS
    assert abs(params - GLIMS_PUBLISHED) / GLIMS_PUBLISHED < 0.001
    # the same topology at 1/12 of the width, so the forward pass stays cheap
    small = cfg.model_copy(update={"stages": [s.model_copy(update={"width": s.width // 12})
                                              for s in cfg.stages]})
    model = build_model(small)
    outs = model.train()(torch.randn(1, 4, 32, 32, 64))  # 1x1x2 at the bottom: norms need > 1 voxel
    assert [tuple(o.shape) for o in outs] == [(1, 3, 32, 32, 64), (1, 3, 16, 16, 32),
                                              (1, 3, 8, 8, 16), (1, 3, 4, 4, 8)]
    with torch.no_grad():
        assert tuple(model.eval()(torch.randn(1, 4, 32, 32, 64)).shape) == (1, 3, 32, 32, 64)


def test_cost_is_cached(tmp_path) -> None:
    cache = CostCache(tmp_path / "c.sqlite")
    first = profile("cmunext_s", (1, 3, 64, 64), cache=cache, repeats=2, warmup=1)
    second = profile("cmunext_s", (1, 3, 64, 64), cache=cache, repeats=2, warmup=1)
    assert not first.cached and second.cached
    assert second.to_dict() == first.to_dict()
    assert len(cache) == 2  # counts + this device's latency
    other = profile("cmunext_s", (2, 3, 64, 64), cache=cache, latency=False)
    assert other.cached and other.macs == 2 * first.macs  # counts are stored at batch 1


def test_arch_id_ignores_name_and_spelled_out_defaults() -> None:
    a = load_arch({"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                   "stages": [{"width": 8}, {"width": 16}]})
    b = load_arch({"name": "x", "spatial_dims": 2, "in_channels": 1, "out_channels": 1, "down": "maxpool",
                   "stages": [{"width": 8, "block": {"type": "conv", "kernel_size": 3}}, {"width": 16}]})
    c = load_arch({"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                   "stages": [{"width": 8}, {"width": 32}]})
    assert arch_id(a) == arch_id(b) != arch_id(c)
    assert len(arch_id(a)) == 12


@pytest.mark.parametrize("dims", [2, 3])
def test_space_to_depth_is_inverted_exactly(dims: int) -> None:
    x = torch.randn(2, 3, *([4] * dims))
    y = space_to_depth(x)
    assert tuple(y.shape) == (2, 3 * 2**dims, *([2] * dims))
    assert torch.equal(depth_to_space(y), x)
    if dims == 2:
        assert torch.equal(y, torch.nn.functional.pixel_unshuffle(x, 2))


def _write(tmp_path, cfg: dict):
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _base(stage0: dict | None = None, **top) -> dict:
    return {"spatial_dims": 2, "in_channels": 3, "out_channels": 1,
            "stages": [stage0 or {"width": 8}, {"width": 16}], **top}


@pytest.mark.parametrize("cfg,message", [
    (_base({"width": 8, "block": {"type": "conv", "kernel_size": 4}}),
     "stages.0.block.kernel_size: kernel size must be odd and positive, got 4"),
    (_base({"width": 8, "block": {"type": "cmunext", "kernel_size": [3, 4]}}),
     "stages.0.block.kernel_size: kernel size must be odd and positive, got 4"),
    (_base({"width": 0}), "stages.0.width: Input should be greater than 0 (got 0)"),
    (_base({"width": -8}), "stages.0.width: Input should be greater than 0 (got -8)"),
    (_base({"width": 8, "block": {"type": "cmunext", "kernel_size": [3, 3, 3]}}),
     "stages.0.block.kernel_size: [3, 3, 3] has 3 entries but spatial_dims is 2"),
    (_base({"width": 8, "block": {"type": "cmunxt"}}),
     "stages.0.block.type: unknown block type 'cmunxt' (did you mean 'cmunext'?)"),
    (_base({"width": 8, "skip": {"type": "skip_fuson"}}),
     "stages.0.skip.type: unknown skip type 'skip_fuson' (did you mean 'skip_fusion'?)"),
    (_base({"width": 8, "skip_attention": {"type": "csa"}}),
     "stages.0.skip_attention.type: unknown skip_attention type 'csa' (did you mean 'csab'?)"),
    (_base({"widht": 8}), "stages.0.widht: unknown key 'widht' (did you mean 'width'?)"),
    (_base(deep_supervison=True), "deep_supervison: unknown key 'deep_supervison' (did you mean 'deep_supervision'?)"),
    (_base({"width": 8, "decoder_depth": 0}), "stages.0.decoder_depth: 0 needs a skip that fuses"),
])
def test_validation_errors_name_file_and_field(tmp_path, cfg: dict, message: str) -> None:
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError) as err:
        load_arch(path)
    assert f"{path}: {message}" in str(err.value)


@pytest.mark.parametrize("shape,message", [
    ((1, 3, 250, 256), "input size [250, 256] is not divisible by 2^(stages-1) = 16 (5 stages); use a multiple of 16"),
    ((1, 3, 256), "input shape [1, 3, 256] has 3 dims; a 2D network takes 4"),
    ((1, 1, 256, 256), "has 1 channels; the network takes in_channels=3"),
])
def test_input_shape_errors(shape, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        profile("cmunext", shape, latency=False)
    assert message in str(err.value)


def test_cli_reports_errors_without_traceback(tmp_path, capsys) -> None:
    assert main(["profile", "cmnext"]) == 2
    assert "'cmnext' is neither a preset (did you mean 'cmunext'?)" in capsys.readouterr().err
    bad = _write(tmp_path, _base({"width": 8, "block": {"type": "conv", "kernel_size": 2}}))
    assert main(["profile", str(bad), "--input", "1,3,32,32"]) == 2
    assert f"{bad}: stages.0.block.kernel_size: kernel size must be odd" in capsys.readouterr().err
    assert main(["profile", "cmunext", "--input", "1,3,a,b"]) == 2
    assert "expected comma-separated integers" in capsys.readouterr().err


def test_missing_and_malformed_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_arch(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [width: 8\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_arch(bad)


def test_arch_ids_of_stored_networks_survive_new_optional_fields() -> None:
    """Ids stored by earlier studies: stage fields added later (down, up, extra) stay out of
    the hash while unset."""
    assert arch_id(load_arch("cmunext")) == "4cf545c64367"
    assert arch_id(load_arch("unet")) == "ac4cc1c7548f"
    cfg = load_arch("cmunext").model_dump(mode="json")
    cfg["stages"][1]["down"] = "strided_conv"
    assert arch_id(load_arch(cfg)) != "4cf545c64367"


def test_first_stage_refuses_down_and_up(tmp_path) -> None:
    path = _write(tmp_path, _base({"width": 8, "down": "patch_merging"}))
    with pytest.raises(ConfigError, match="stages.0.down: the first stage is neither entered"):
        load_arch(path)
