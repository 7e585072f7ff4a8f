"""Study files, factor paths, variants and contrasts."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nasseg.ablation.config import AblationConfig, deep_merge, level_label, load_ablation
from nasseg.ablation.design import build_archs, plan_contrasts, plan_variants
from nasseg.ablation.factors import get_path, set_path
from nasseg.errors import ConfigError

STUDIES = Path(__file__).resolve().parent.parent / "studies"

SMALL = {
    "name": "skips",
    "base": "cmunext_s",
    "factors": {"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]}},
    "seeds": 3,
    "data": {"kind": "synthetic", "size": 32},
    "train": {"epochs": 1},
}


def write(tmp_path: Path, data: dict, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_set_path_star_slice_index_and_copy():
    cfg = {"stages": [{"w": 1, "skip": {"type": "concat"}}, {"w": 2, "skip": {"type": "concat"}},
                      {"w": 3, "skip": {"type": "concat"}}]}
    assert get_path(set_path(cfg, "stages.*.w", 8), "stages.*.w") == [8, 8, 8]
    assert get_path(set_path(cfg, "stages.:-1.w", 8), "stages.*.w") == [8, 8, 3]
    assert get_path(set_path(cfg, "stages.1.w", 8), "stages.*.w") == [1, 8, 3]
    assert cfg["stages"][0]["w"] == 1  # the input is not modified


def test_set_path_type_swap_drops_the_old_components_params():
    cfg = {"block": {"type": "cmunext", "kernel_size": 7, "expansion": 4}}
    assert set_path(cfg, "block.type", "conv") == {"block": {"type": "conv"}}
    assert set_path(cfg, "block.type", "cmunext") == cfg  # same type: params kept


def test_set_path_errors_name_the_path():
    cfg = {"stages": [{"skip": {"type": "concat"}}]}
    with pytest.raises(ConfigError, match=r"stages\.\*\.skp\.type: 'stages\.\*' has no field 'skp' "
                                          r"\(did you mean 'skip'\?\)"):
        set_path(cfg, "stages.*.skp.type", "irsc")
    with pytest.raises(ConfigError, match=r"'stages' has 1 entries, no index 4"):
        set_path(cfg, "stages.4.skip", None)
    with pytest.raises(ConfigError, match=r"'stages' is a list; use an index, '\*' or a slice, not 'x'"):
        set_path(cfg, "stages.x.skip", None)
    with pytest.raises(ConfigError, match="not a dotted path"):
        set_path(cfg, "stages..skip", None)


def test_level_labels():
    assert [level_label(v) for v in ("irsc", 7, None, {"type": "csab"}, False)] == \
        ["irsc", "7", "none", "csab", "false"]


def test_load_with_profile_and_overrides(tmp_path):
    data = deep_merge(SMALL, {"profiles": {"cpu": {"seeds": 2, "train": {"epochs": 1}}}})
    path = write(tmp_path, data)
    cfg = load_ablation(path, profile="cpu", overrides={"data": {"max_cases": 12}})
    assert cfg.name == "skips-cpu" and cfg.seed_list() == [0, 1]
    assert cfg.data == {"kind": "synthetic", "size": 32, "max_cases": 12}
    assert cfg.storage_url() == f"sqlite:///{Path.cwd() / 'runs/skips-cpu/study.db'}"  # as a search's
    with pytest.raises(ConfigError, match=r"study\.yaml: profiles: no profile 'gpu' "
                                          r"\(did you mean 'cpu'\?\); defined: cpu"):
        load_ablation(path, profile="gpu")


def test_unknown_key_names_file_and_field(tmp_path):
    path = write(tmp_path, {**SMALL, "seed": 3})
    with pytest.raises(ConfigError, match=r"study\.yaml: seed: unknown key 'seed' \(did you mean 'seeds'\?\)"):
        load_ablation(path)
    bad = deep_merge(SMALL, {"factors": {"skip": {"baseline": "irsk"}}})
    with pytest.raises(ConfigError, match=r"factors\.skip: baseline 'irsk' is not one of the levels "
                                          r"\['skip_fusion', 'irsc'\] \(did you mean 'irsc'\?\)"):
        load_ablation(write(tmp_path, bad))
    bad = deep_merge(SMALL, {"factors": {"skip": {"levles": [1, 2]}}})
    with pytest.raises(ConfigError, match=r"factors\.skip\.levles: unknown key 'levles' \(did you mean 'levels'\?\)"):
        load_ablation(write(tmp_path, bad))
    with pytest.raises(ConfigError, match=r"stats\.test: Input should be 'mixed', 'wilcoxon', 'ttest' or 'crossed'"):
        load_ablation(write(tmp_path, {**SMALL, "stats": {"test": "anova"}}))


def test_bad_factor_path_is_reported_before_training(tmp_path):
    bad = deep_merge(SMALL, {"factors": {"skip": {"path": "stages.*.skip.kind"}}})
    cfg = load_ablation(write(tmp_path, bad))
    with pytest.raises(ConfigError, match=r"study\.yaml: factors\.skip \(level 'skip_fusion'\): "
                                          r"stages\.\*\.skip\.kind: 'stages\.\*\.skip' has no field 'kind'"):
        build_archs(cfg, plan_variants(cfg), "study.yaml")
    bad = {**SMALL, "factors": {"skip": {"levels": [{}, {"stages.:-1.skip.type": "concat"}],
                                         "labels": ["fusion", "concat"]}}}
    cfg = load_ablation(write(tmp_path, bad))
    with pytest.raises(ConfigError, match=r"variant 'concat' is not a valid network: .*decoder_depth: 0 "
                                          r"needs a skip that fuses"):
        build_archs(cfg, plan_variants(cfg), "study.yaml")


def test_one_at_a_time_and_full_factorial_variants():
    two = {"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]},
           "k": {"path": "stages.*.block.kernel_size", "levels": [3, 7, 9], "baseline": 7}}
    cfg = AblationConfig(name="x", base="cmunext_s", data={}, factors=two)
    names = [v.name for v in plan_variants(cfg)]
    assert names == ["skip=skip_fusion,k=7", "skip=irsc,k=7", "skip=skip_fusion,k=3", "skip=skip_fusion,k=9"]
    full = cfg.model_copy(update={"design": "full_factorial"})
    variants = plan_variants(full)
    assert len(variants) == 6 and variants[0].is_baseline and variants[0].name == "skip=skip_fusion,k=7"
    assert [c.reference for c in plan_contrasts(full, variants)] == ["skip=skip_fusion,k=7"] * 5
    archs = build_archs(full, variants)
    assert [s.block.kernel_size for s in archs["skip=irsc,k=9"].stages] == [9] * 5
    assert [s.skip.type for s in archs["skip=irsc,k=9"].stages] == ["irsc"] * 4 + ["concat"]


def test_simple_contrasts_within_each_network():
    cfg = load_ablation(STUDIES / "irsc_transfer_ablation.yaml")
    contrasts = plan_contrasts(cfg, plan_variants(cfg))
    assert [(c.variant, c.reference, c.factor) for c in contrasts] == [
        ("network=unet,skip=irsc", "network=unet,skip=native", "skip"),
        ("network=cmunext,skip=irsc", "network=cmunext,skip=native", "skip")]


@pytest.mark.parametrize("name", ["cmunext_skip_ablation", "irsc_transfer_ablation"])
@pytest.mark.parametrize("profile", [None, "cpu"])
def test_shipped_studies_build_every_variant(name, profile):
    cfg = load_ablation(STUDIES / f"{name}.yaml", profile=profile)
    variants = plan_variants(cfg)
    archs = build_archs(cfg, variants, name)
    assert len(set(a.model_dump_json(exclude={"name"}) for a in archs.values())) == len(variants)
    assert sum(v.is_baseline for v in variants) == 1
    if profile == "cpu":
        assert cfg.name == f"{name}-cpu" and cfg.train["epochs"] <= 5 and cfg.data["max_cases"] <= 120
    else:
        assert cfg.seed_list() == [0, 1, 2, 3, 4]


def test_cmunext_skip_study_variants_are_the_papers_question():
    cfg = load_ablation(STUDIES / "cmunext_skip_ablation.yaml")
    archs = build_archs(cfg, plan_variants(cfg))
    skips = {n: [(s.skip.type, s.decoder_depth) for s in a.stages[:-1]] for n, a in archs.items()}
    assert skips == {"skip_fusion": [("skip_fusion", 0)] * 4, "concat": [("concat", 1)] * 4,
                     "irsc": [("irsc", 0)] * 4}
