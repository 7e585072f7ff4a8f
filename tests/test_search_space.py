"""Search spaces: loading checks every leaf, sampling is valid and conditional, presets invert."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from nasseg.arch import ArchConfig, arch_id, load_arch
from nasseg.errors import ConfigError
from nasseg.search.space_parse import load_space, parse_space
from nasseg.search.sources import FixedSource, TrialSource

REPO = Path(__file__).resolve().parent.parent
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(**stages):
    return {"name": "t", "spatial_dims": 2,
            "stages": {"n": 3, "width": {"choice": [4, 8]}, **stages}}


def _sample_many(space, n=40, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((trial, space.sample(TrialSource(trial), 3, 1)))
        study.tell(trial, 0.0)
    return out


def test_shipped_spaces_exist_and_load() -> None:
    names = {p.name for p in SPACES}
    assert {"lightweight_2d.yaml", "volumetric_3d.yaml"} <= names
    for path in SPACES:
        space = load_space(path)
        assert space.param_leaves(), path


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_sample_is_named_in_param_leaves_and_mostly_valid(path: Path) -> None:
    space = load_space(path)
    leaves = space.param_leaves()
    for trial, arch in _sample_many(space, 60):
        assert set(trial.params) <= set(leaves)
        ArchConfig.model_validate(arch)  # a space cannot express an invalid network


@pytest.mark.parametrize("tied", [False, True])
def test_decoder_depth_zero_only_with_a_fusing_skip(tied: bool) -> None:
    """decoder_depth 0 (no decoder block) is valid only after a skip that fuses to the stage
    width; a concat stage samples decoder_depth without 0, under its own parameter name."""
    space = parse_space(_space(decoder_depth={"int": [0, 2], "per_stage": not tied},
                               skip={"type": {"choice": ["concat", "skip_fusion", "irsc"], "per_stage": True}}),
                        "t.yaml")
    seen = set()
    for trial, arch in _sample_many(space, 80):
        cfg = ArchConfig.model_validate(arch)
        for st in cfg.stages[:-1]:
            seen.add((st.skip.type, st.decoder_depth))
            assert st.decoder_depth > 0 or st.skip.type != "concat"
        assert set(trial.params) <= set(space.param_leaves())
    assert ("concat", 1) in seen and ("concat", 2) in seen and ("irsc", 0) in seen
    assert any(k.endswith("decoder_depth.unfused") for k in space.param_leaves())


def test_a_space_that_only_allows_decoder_depth_zero_with_concat_is_refused() -> None:
    with pytest.raises(ConfigError, match="decoder_depth: only 0"):
        parse_space(_space(decoder_depth=0, skip={"type": {"choice": ["concat", "irsc"]}}), "t.yaml")
    parse_space(_space(decoder_depth=0, skip={"type": "irsc"}), "t.yaml")  # fine: irsc fuses


def test_typo_in_block_param_names_file_path_and_suggestion(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(_space(block={"type": "cmunext", "kernal_size": {"choice": [3, 7]}})))
    with pytest.raises(ConfigError) as err:
        load_space(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}: stages.block.kernal_size: unknown field of block 'cmunext'")
    assert "did you mean 'kernel_size'" in msg


@pytest.mark.parametrize("stages, where, words", [
    ({"block": {"type": {"choice": ["conv", "cmunxt"]}}}, "stages.block.type.choice.1", "did you mean 'cmunext'"),
    ({"depth": {"int": [0, 2]}}, "stages.depth.int.0", "greater than 0"),
    ({"block": {"type": "conv", "kernel_size": {"choice": [3, 4]}}}, "stages.block.kernel_size.choice.1", "odd"),
    ({"block": {"type": "conv", "segnetr": {"window_size": 4}}}, "stages.block.segnetr", "not among"),
    ({"block": {"type": "segnetr", "segnetr": {"windw_size": 4}}}, "stages.block.segnetr.windw_size", "window_size"),
    ({"skip": {"type": {"choice": ["concat", "irsc"], "per_stag": True}}}, "stages.skip.type", "per_stage"),
    ({"dept": 1}, "stages.dept", "did you mean 'depth'"),
])
def test_bad_leaves_are_reported_with_their_path(tmp_path: Path, stages, where, words) -> None:
    with pytest.raises(ConfigError) as err:
        parse_space(_space(**stages), "s.yaml")
    assert f"s.yaml: {where}" in str(err.value)
    assert words in str(err.value)


def test_top_level_errors() -> None:
    with pytest.raises(ConfigError, match=r"s.yaml: nrom: unknown field .*did you mean 'norm'"):
        parse_space({**_space(), "nrom": "batch"}, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: act.choice.1: 'gleu' is not a valid value"):
        parse_space({**_space(), "act": {"choice": ["relu", "gleu"]}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: norm.per_stage: only leaves under 'stages'"):
        parse_space({**_space(), "norm": {"choice": ["batch"], "per_stage": True}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: constraints.input_size: required"):
        parse_space({**_space(), "constraints": {"max_params": 10}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: constraints.max_parms: unknown key"):
        parse_space({**_space(), "constraints": {"max_parms": 10}}, "s.yaml")
    # the deepest network of the space (5 stages) needs multiples of 16: caught when loaded
    with pytest.raises(ConfigError, match=r"s.yaml: constraints.input_size \[40, 48\] is not divisible by "
                                          r"2\^\(stages-1\) = 16 \(the space's deepest networks: 5 stages\)"):
        parse_space({**_space(n={"choice": [3, 5]}), "constraints": {"input_size": [40, 48]}}, "s.yaml")
    assert parse_space({**_space(), "constraints": {"input_size": [40, 48]}}, "s.yaml")  # 3 stages: 4 divides


def test_conditional_params_only_for_their_block_and_tied_vs_per_stage() -> None:
    space = parse_space(_space(
        block={"type": {"choice": ["conv", "segnetr"], "per_stage": True},
               "kernel_size": {"choice": [3, 5], "per_stage": True},
               "segnetr": {"window_size": {"choice": [2, 4]}}},
        depth={"int": [1, 2]}), "s.yaml")
    for trial, arch in _sample_many(space, 40):
        types = [s["block"]["type"] for s in arch["stages"]]
        has_window = "stages.block.segnetr.window_size" in trial.params
        assert has_window == ("segnetr" in types)
        windows = {s["block"]["window_size"] for s in arch["stages"] if s["block"]["type"] == "segnetr"}
        assert len(windows) <= 1  # tied across stages
        assert len({s["depth"] for s in arch["stages"]}) == 1  # tied
        for i, s in enumerate(arch["stages"]):
            # the generic kernel applies to conv (and segnetr's depthwise conv), chosen per stage
            assert s["block"]["kernel_size"] == trial.params[f"stages.{i}.block.kernel_size"]
        # the deepest stage has no decoder: its skip is never sampled
        assert "skip" not in arch["stages"][-1]


def test_preset_inverts_into_the_space_and_rebuilds_it_exactly() -> None:
    space = load_space(REPO / "search_spaces" / "lightweight_2d.yaml")
    preset = load_arch("cmunext_s")
    params = space.params_for(preset, 3, 1, label="cmunext_s")
    rebuilt = space.build(FixedSource(params), 3, 1)
    assert arch_id(rebuilt) == arch_id(preset)
    # enqueue_trial with those params reproduces it through a real Optuna trial
    study = optuna.create_study(directions=["maximize"])
    study.enqueue_trial(params)
    trial = study.ask()
    assert arch_id(space.build(TrialSource(trial), 3, 1)) == arch_id(preset)


def test_preset_outside_the_space_names_the_field(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    space = load_space("search_spaces/lightweight_2d.yaml")
    with pytest.raises(ConfigError) as err:
        space.params_for(load_arch("cmunext"), 3, 1, label="cmunext")
    assert str(err.value) == ("search_spaces/lightweight_2d.yaml: stages.3.depth: cmunext has 3, "
                              "outside the space (int in [1, 2] step 1)")


def test_geometric_width_and_grid() -> None:
    space = parse_space(_space(width={"base": {"choice": [4, 6]}, "factor": 2},
                               block={"type": {"choice": ["conv", "cmunext"]}}), "s.yaml")
    grid = space.grid()
    assert grid == {"stages.width.base": [4, 6], "stages.block.type": ["conv", "cmunext"]}
    arch = space.sample(FixedSource({"stages.width.base": 6, "stages.block.type": "conv"}), 1, 1)
    assert [s["width"] for s in arch["stages"]] == [6, 12, 24]
    with pytest.raises(ConfigError, match="discrete"):
        parse_space({**_space(), "stem": {"kernel_size": 3}, "stages": {
            "n": 3, "width": 4, "block": {"type": "segnetr", "se_ratio": {"float": [0.1, 0.5]}}}},
            "s.yaml").grid()
