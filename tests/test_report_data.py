"""The report's data functions on real Optuna SQLite studies, checked against direct computation."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nasseg.arch import load_arch
from nasseg.errors import NassegError
from nasseg.report.data import (arch_summary, header_info, hypervolume_history_info,
                                importance_info, learning_curves_info, objectives_of,
                                parallel_info, pareto_info, pareto_table_info)
from nasseg.report.source import open_study
from nasseg.report.testing import add_trial, new_study
from nasseg.store.pareto import normalise, normalised_hypervolume, pareto_indices


def pareto_mask(values, maximize):
    front = set(pareto_indices(np.asarray(values).tolist(), ["maximize" if m else "minimize" for m in maximize]))
    return np.array([i in front for i in range(len(values))])

optuna.logging.set_verbosity(optuna.logging.WARNING)
OBJECTIVES = [("dice", "maximize"), ("macs", "minimize"), ("params", "minimize")]
REFERENCE = {"dice": 0.0, "macs": 2e9, "params": 2e6}
DISTS = {"width": CategoricalDistribution([8, 16, 32]), "kernel": CategoricalDistribution([3, 7]),
         "skip": CategoricalDistribution(["concat", "skip_fusion", "irsc"])}


def make_search_study(storage: str, name: str = "quick", n: int = 12, objectives=OBJECTIVES,
                      seed: int = 0) -> optuna.Study:
    """A search study in nasseg's format: every trial a real CMUNeXt-S variant with the values
    given here (seeded), a short history, every fourth trial stopped early."""
    study = new_study(storage, name, "search", objectives, reference_point=REFERENCE,
                      dataset={"kind": "synthetic", "synthetic": {"spatial_dims": 2, "n_cases": 96}},
                      config={"name": name, "trials": n}, command=f"nasseg search {name}.yaml",
                      versions={"nasseg": "0.1.0", "optuna": optuna.__version__})
    rng = np.random.default_rng(seed)
    base = load_arch("cmunext_s").model_dump(mode="json")
    for i in range(n):
        width, kernel = int(rng.choice([8, 16, 32])), int(rng.choice([3, 7]))
        skip = str(rng.choice(["concat", "skip_fusion", "irsc"]))
        arch = dict(base, stages=[dict(s) for s in base["stages"]])
        arch["stages"][0] = dict(arch["stages"][0], width=width)
        dice = 0.6 + 0.02 * width / 8 + 0.01 * kernel / 7 + float(rng.normal(0, 0.01))
        macs, params = 1e8 * width * (1 + kernel / 7), 1e4 * width * width / 8
        values = {"dice": dice, "macs": macs, "params": params}
        epochs = 3 if i % 4 == 0 else 5
        history = [{"epoch": e + 1, "dice": dice * (1 - np.exp(-(e + 1) / 2)), "train_loss": 1 / (e + 1)}
                   for e in range(epochs)]
        add_trial(study, [values[o] for o, _ in objectives], params={"width": width, "kernel": kernel, "skip": skip},
                  distributions=DISTS, arch=arch, arch_id=f"a{i:02d}", cost={"params": params, "macs": macs},
                  history=history, stopped_early=i % 4 == 0, seed=0,
                  split={"method": "random", "seed": 0, "n_train": 67, "n_val": 29, "hash": "abc123"})
    add_trial(study, None, state=TrialState.FAIL, fail_reason="non-finite loss", arch_id="bad",
              history=[{"epoch": 1, "dice": 0.1}])
    return study


@pytest.fixture
def search(tmp_path) -> optuna.Study:
    return make_search_study(f"sqlite:///{tmp_path / 'study.db'}")


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(1)
    values = rng.uniform(size=(40, 3))
    maximize = [True, False, False]
    loss = np.where(maximize, -values, values)
    expected = [not any(np.all(loss[j] <= loss[i]) and np.any(loss[j] < loss[i]) for j in range(40) if j != i)
                for i in range(40)]
    assert pareto_mask(values, maximize).tolist() == expected


def test_pareto_info_of_stored_trials(search):
    info = pareto_info(search)
    assert [o.name for o in info.objectives] == ["dice", "macs", "params"]
    assert len(info.points) == 12  # the failed trial is left out
    values = np.array([t.values for t in search.get_trials(states=(TrialState.COMPLETE,))])
    assert info.points["is_pareto"].tolist() == pareto_mask(values, [True, False, False]).tolist()
    assert info.points["summary"].iloc[0].startswith("cmunext x5 | widths ")


def test_normalised_hypervolume_by_hand():
    """The report's hypervolume is the store's one function (nasseg.store.pareto)."""
    names, dirs = ["dice", "macs"], ["maximize", "minimize"]
    ref, ideal = {"dice": 0.0, "macs": 2e9}, {"dice": 1.0, "macs": 0.0}
    # dice 0.8 is 0.8 of the way from the reference to the ideal; macs 1e9 of a 2e9 bound: 0.5
    assert normalise([0.8, 1e9], names, dirs, ref, ideal) == pytest.approx([0.8, 0.5])
    # union of [0,0.8]x[0,0.5] and [0,0.5]x[0,0.8]: 0.4 + 0.4 - 0.25
    assert normalised_hypervolume([[0.8, 1e9], [0.5, 0.4e9]], names, dirs, ref, ideal) == pytest.approx(0.55)
    assert normalised_hypervolume([[-0.2, 0.1e9]], names, dirs, ref, ideal) == 0.0  # beyond the reference


def objectives_of_pairs(pairs):
    import dataclasses

    from nasseg.store.objectives import get

    return [dataclasses.replace(get(n), direction=d) for n, d in pairs]


def test_hypervolume_history_is_cumulative_against_the_fixed_reference(search):
    hv = hypervolume_history_info(search)
    trials = search.get_trials(states=(TrialState.COMPLETE,))
    assert hv["trial"].tolist() == [t.number for t in trials]
    assert np.all(np.diff(hv["hypervolume"]) >= -1e-12)
    objs = objectives_of(search)
    ideal = {o.name: o.ideal for o in objs}
    losses = 1 - np.array([normalise(t.values, [o.name for o in objs], [o.direction for o in objs], REFERENCE, ideal)
                           for t in trials])
    # brute force on a grid would be slow; check the last value by inclusion-exclusion of boxes
    assert hv["hypervolume"].iloc[-1] == pytest.approx(_inclusion_exclusion(losses), abs=1e-9)


def _inclusion_exclusion(points: np.ndarray) -> float:
    pts = [p for p in points if np.all(p < 1)]
    total = 0.0
    for k in range(1, len(pts) + 1):
        for combo in itertools.combinations(pts, k):
            corner = np.max(combo, axis=0)
            total += (-1) ** (k + 1) * float(np.prod(1 - corner))
    return total


def test_parallel_coordinates_use_params_then_objectives(search):
    info = parallel_info(search)
    assert [d.label for d in info.dimensions] == ["kernel", "skip", "width", "dice", "macs", "params"]
    skip = info.dimensions[1]
    assert skip.ticktext == sorted(set(skip.ticktext))
    stored = [t.params["skip"] for t in search.get_trials(states=(TrialState.COMPLETE,))]
    assert [skip.ticktext[int(v)] for v in skip.values] == stored


def test_importances_per_objective_and_too_few_trials(search, tmp_path):
    info = importance_info(search)
    assert sorted(info.table["objective"].unique()) == ["dice", "macs", "params"]
    for _, sub in info.table.groupby("objective"):
        assert sorted(sub["param"]) == ["kernel", "skip", "width"]
        assert sub["importance"].sum() == pytest.approx(1.0)
    small = make_search_study(f"sqlite:///{tmp_path / 'small.db'}", "small", n=3)
    few = importance_info(small)
    assert few.table.empty
    assert few.note == "parameter importances need at least 4 completed trials (this study has 3)"


def test_learning_curves_mark_stopped_and_failed(search):
    curves = learning_curves_info(search)
    per_trial = curves.groupby("trial").agg(n=("epoch", "size"), stopped=("stopped_early", "first"),
                                            state=("state", "first"))
    assert per_trial.loc[0].tolist() == [3, True, "COMPLETE"]
    assert per_trial.loc[1].tolist() == [5, False, "COMPLETE"]
    assert per_trial.loc[12].tolist() == [1, False, "FAIL"]


def test_pareto_table_holds_each_networks_config(search):
    table = pareto_table_info(search)
    info = pareto_info(search)
    assert sorted(table["trial"]) == sorted(info.points.loc[info.points["is_pareto"], "trial"])
    assert table["dice"].is_monotonic_decreasing
    assert all("stages:" in c and "cmunext" in c for c in table["config"])
    assert list(table.columns) == ["trial", "arch_id", "dice", "macs", "params", "summary", "config"]


def test_header_collects_dataset_split_seeds_versions_command(search):
    h = header_info(search)
    assert (h.name, h.kind, h.seeds, h.command) == ("quick", "search", [0], "nasseg search quick.yaml")
    assert h.split["hash"] == "abc123" and h.states == {"trained": 12, "failed": 1}
    assert h.versions["optuna"] == optuna.__version__


def test_arch_summary_mentions_attention_and_depths():
    arch = load_arch("cmunext").model_dump(mode="json")
    arch["stages"][0]["skip_attention"] = {"type": "csab"}
    assert arch_summary(arch) == ("cmunext x5 | widths 16-32-128-160-256 | k 3-3-7-7-7 | depths 1-1-1-3-1 | "
                                  "decoder 0-0-0-0 | skip skip_fusion | attention csab/none")


def test_open_study_from_db_folder_url_and_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_search_study(url)
    for source in (tmp_path / "study.db", tmp_path, url):
        assert open_study(str(source)).study_name == "quick"
    make_search_study(url, name="other", n=2)
    with pytest.raises(NassegError, match=r"several studies: quick, other; name one with --study"):
        open_study(url)
    assert open_study(url, study_name="other").study_name == "other"
    with pytest.raises(NassegError, match=r"no study 'nope' \(studies: quick, other\)"):
        open_study(url, study_name="nope")
    missing = tmp_path / "none" / "study.db"
    with pytest.raises(NassegError, match=r"no study storage at .*none/study.db \(run `nasseg search` first"):
        open_study(str(missing))
    assert not missing.parent.exists()  # opening never creates a storage


def test_open_study_from_a_study_yaml_resolves_name_profile_and_storage(tmp_path):
    import yaml

    path = tmp_path / "skips.yaml"
    path.write_text(yaml.safe_dump({
        "name": "skips", "base": "cmunext_s", "out_dir": str(tmp_path / "out"),
        "factors": {"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]}},
        "data": {"kind": "synthetic"}, "profiles": {"cpu": {"seeds": 1}}}))
    with pytest.raises(NassegError, match=r"skips\.yaml: no study storage at .*out/study\.db"):
        open_study(path, profile="cpu")
    (tmp_path / "out").mkdir()
    new_study(f"sqlite:///{tmp_path / 'out' / 'study.db'}", "skips-cpu", "ablation", [("dice", "maximize")])
    assert open_study(path, profile="cpu").study_name == "skips-cpu"
    with pytest.raises(NassegError, match=r"no study 'skips' \(studies: skips-cpu\)"):
        open_study(path)


def test_open_study_from_a_search_yaml_uses_the_searchs_resolution(tmp_path):
    import yaml

    repo = Path(__file__).resolve().parent.parent
    study = yaml.safe_load((repo / "studies" / "quickstart.yaml").read_text())
    study["space"] = str((repo / study["space"]).resolve())
    study["output_dir"] = str(tmp_path / "run")
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(study))
    (tmp_path / "run").mkdir()
    make_search_study(f"sqlite:///{tmp_path / 'run' / 'study.db'}", name="quickstart", n=3)
    assert open_study(path).study_name == "quickstart"
    assert open_study(tmp_path / "run").study_name == "quickstart"
