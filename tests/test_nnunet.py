"""nnU-Net v2 interoperability, with the real nnunetv2 2.8.1 (the test extra installs it):

- ``nasseg export RUN --format nnunet --plans nnUNetPlans.json``: nnU-Net's own
  ``get_network_from_plans`` (through ``nnUNetTrainer.build_network_architecture``) builds the
  nasseg network, a forward/backward with nnU-Net's deep-supervision loss runs at the planned
  patch, and one real ``nnUNetTrainer`` training iteration runs on the CPU.
- nnU-Net raw datasets (``DatasetXXX_Name``, ``_0000`` channel files, ``dataset.json``) train
  with ``nasseg train --data DatasetXXX_Name``, 3D (.nii.gz) and 2D (.png).

``tests/fixtures/nnunet/nnUNetPlans.json`` is nnU-Net 2.8.1's plan of :func:`write_blobs`'s
dataset, written by its own planner (its fingerprint workers take minutes on a loaded 2-core
machine, too long for the default suite)::

    python -c "import test_nnunet as t, pathlib; t.write_blobs(pathlib.Path('raw'))"   # in tests/
    nnUNet_raw=raw nnUNet_preprocessed=pre nnUNet_results=res \\
        nnUNetv2_plan_and_preprocess -d 501 -c 3d_fullres -np 1
    cp pre/Dataset501_Blobs/nnUNetPlans.json pre/Dataset501_Blobs/dataset_fingerprint.json fixtures/nnunet/

``test_fixture_is_what_nnunet_plans`` (slow) runs that planner again and compares.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nasseg.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "nnunet" / "nnUNetPlans.json"
BLOBS = "Dataset501_Blobs"
ARCH3D = {"name": "tiny4", "spatial_dims": 3, "in_channels": 1, "out_channels": 3, "norm": "instance",
          "act": "leaky_relu", "up": "transposed",
          "stages": [{"width": 4}, {"width": 8}, {"width": 12}, {"width": 16}]}


def write_blobs(raw: Path, n: int = 6, shape: tuple[int, int, int] = (32, 32, 32),
                spacing: tuple[float, float, float] = (1.0, 1.0, 1.5), name: str = BLOBS, z_steps: int = 1) -> Path:
    """``raw/<name>``: n seeded MRI-like volumes of ``shape`` voxels of ``spacing`` mm (the
    last axis' spacing x 1, 1.25, 1.5, ... cycling over ``z_steps`` cases) with a two-class
    ellipsoid (outer shell 1, core 2; radius 6 and 3 voxels), in nnU-Net's raw layout."""
    root = raw / name
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        g = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
        c = (rng.uniform(10, 22, 3) * np.array(shape) / 32)[:, None, None, None]
        r = np.sqrt(((g - c) ** 2).sum(0))
        lab = (r < 6).astype(np.uint8) + (r < 3).astype(np.uint8)
        img = (lab * 50 + rng.normal(100, 10, shape)).astype(np.float32)
        aff = np.diag([spacing[0], spacing[1], spacing[2] * (1 + 0.25 * (i % z_steps)), 1.0])
        nib.save(nib.Nifti1Image(img, aff), root / "imagesTr" / f"blob_{i:03d}_0000.nii.gz")
        nib.save(nib.Nifti1Image(lab, aff), root / "labelsTr" / f"blob_{i:03d}.nii.gz")
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "outer": 1, "inner": 2},
         "numTraining": n, "file_ending": ".nii.gz"}))
    return root


def write_png_dataset(raw: Path, n: int = 8) -> Path:
    """``raw/Dataset502_Discs``: n 48x48 two-channel PNG cases (grey ``_0000`` and ``_0001``),
    a bright disc labelled 1."""
    root = raw / "Dataset502_Discs"
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:48, :48]
    for i in range(n):
        cy, cx = rng.uniform(14, 34, 2)
        lab = (((yy - cy) ** 2 + (xx - cx) ** 2) < 64).astype(np.uint8)
        for ch in range(2):
            img = np.clip(lab * 120 + rng.normal(60 + 20 * ch, 15, lab.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "imagesTr" / f"disc_{i:02d}_{ch:04d}.png")
        Image.fromarray(lab).save(root / "labelsTr" / f"disc_{i:02d}.png")
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "grey", "1": "grey2"}, "labels": {"background": 0, "disc": 1},
         "numTraining": n, "file_ending": ".png"}))
    return root


@pytest.fixture(scope="module")
def blobs_run(tmp_path_factory):
    """A nasseg run trained (1 epoch) on the raw dataset, named as nnU-Net users name it."""
    tmp = tmp_path_factory.mktemp("blobs")
    write_blobs(tmp / "raw")
    (tmp / "arch.yaml").write_text(yaml.safe_dump(ARCH3D))
    mp = pytest.MonkeyPatch()
    mp.setenv("nnUNet_raw", str(tmp / "raw"))
    mp.chdir(tmp)
    try:
        code = main(["train", str(tmp / "arch.yaml"), "--data", BLOBS, "--epochs", "1", "--batch-size", "2",
                     "--threads", "1", "--device", "cpu", "--run-dir", str(tmp / "run"), "--no-progress",
                     "--val-fraction", "0.34", "--test-fraction", "0.0"])
    finally:
        mp.undo()
    assert code == 0
    return tmp


def test_train_reads_an_nnunet_raw_dataset_by_name(blobs_run):
    run = blobs_run / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["kind"] == "nnunet"
    assert Path(config["data"]["path"]).name == BLOBS
    split = json.loads((run / "split.json").read_text())
    ids = sorted(split["train"] + split["val"])
    assert ids == [f"blob_{i:03d}" for i in range(6)]  # nnU-Net's identifiers, no _0000
    per_case = (run / "per_case.csv").read_text()
    assert "outer" in per_case or ",1," in per_case


def test_predict_with_a_network_trained_on_nnunet_volumes(blobs_run, tmp_path):
    """Prediction preprocesses a new volume as training did (the run's stored plan), whatever
    layout the training volumes came in."""
    image = blobs_run / "raw" / BLOBS / "imagesTr" / "blob_005_0000.nii.gz"
    assert main(["predict", str(blobs_run / "run"), "--input", str(image), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    (mask,) = (tmp_path / "out").iterdir()
    label = nib.load(str(blobs_run / "raw" / BLOBS / "labelsTr" / "blob_005.nii.gz"))
    pred = nib.load(str(mask))
    assert pred.shape == label.shape and np.allclose(pred.affine, label.affine)
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2}


def test_export_trains_in_nnunet(blobs_run, tmp_path, monkeypatch, capsys):
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nasseg.nnunet.network import NassegUNet

    pre = tmp_path / "pre" / BLOBS
    pre.mkdir(parents=True)
    plans_in = pre / "nnUNetPlans.json"
    shutil.copy(FIXTURE, plans_in)
    shutil.copy(FIXTURE.with_name("dataset_fingerprint.json"), pre)  # the trainer copies it to its results
    before = plans_in.read_bytes()
    out = tmp_path / "export"
    assert main(["export", str(blobs_run / "run"), "--format", "nnunet", "-o", str(out),
                 "--plans", str(plans_in)]) == 0
    said = capsys.readouterr().out
    assert "3d_fullres_nasseg" in said and "nnUNetv2_train Dataset501_Blobs 3d_fullres_nasseg 0 -p nnUNetPlans_nasseg" in said
    assert plans_in.read_bytes() == before  # the input plans are never changed
    fragment = json.loads((out / "plans_fragment.json").read_text())["configurations"]["3d_fullres_nasseg"]
    entry = fragment["architecture"]
    assert entry["network_class_name"] == "nasseg.nnunet.network.NassegUNet"
    assert entry["_kw_requires_import"] == []
    assert entry["arch_kwargs"]["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert [s["width"] for s in entry["arch_kwargs"]["arch"]["stages"]] == [4, 8, 12, 16]
    assert main(["export", str(blobs_run / "run"), "--format", "nnunet", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err  # an earlier export is not overwritten

    shutil.copy(out / "nnUNetPlans_nasseg.json", pre / "nnUNetPlans_nasseg.json")
    monkeypatch.setenv("nnUNet_raw", str(blobs_run / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    torch.set_num_threads(1)
    plans = json.loads((pre / "nnUNetPlans_nasseg.json").read_text())
    dataset_json = json.loads((blobs_run / "raw" / BLOBS / "dataset.json").read_text())
    shutil.copy(blobs_run / "raw" / BLOBS / "dataset.json", pre / "dataset.json")
    _preprocess_with_nnunet(plans, "3d_fullres_nasseg", dataset_json, blobs_run / "raw" / BLOBS, pre)

    # what `nnUNetv2_train Dataset501_Blobs 3d_fullres_nasseg 0 -p nnUNetPlans_nasseg -device cpu` builds
    trainer = get_trainer_from_args(BLOBS, "3d_fullres_nasseg", 0, "nnUNetTrainer", "nnUNetPlans_nasseg",
                                    device=torch.device("cpu"))
    trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch, trainer.num_epochs = 1, 1, 1
    trainer.on_train_start()  # nnU-Net builds the network from the plans: get_network_from_plans
    net = trainer.network
    assert isinstance(net, NassegUNet) and net.decoder.deep_supervision
    patch = PlansManager(plans).get_configuration("3d_fullres_nasseg").patch_size
    assert list(patch) == [32, 32, 32]
    scales = trainer._get_deep_supervision_scales()
    x = torch.randn(2, 1, *patch)
    outs = net(x)
    assert [tuple(o.shape) for o in outs] == [(2, 3, *(int(p * s[0]) for p in patch)) for s in scales]
    batch = next(trainer.dataloader_train)
    assert [tuple(t.shape) for t in batch["target"]] == [(2, 1, *o.shape[2:]) for o in outs]
    result = trainer.train_step(batch)  # nnU-Net's loss (DC+CE, deep supervision), backward, SGD step
    assert np.isfinite(result["loss"])
    assert all(p.grad is not None for p in net.network.parameters())
    trainer.set_deep_supervision_enabled(False)  # what nnU-Net does for validation and inference
    assert tuple(net(x).shape) == (2, 3, *patch)
    trainer.on_train_end()


def _preprocess_with_nnunet(plans: dict, configuration: str, dataset_json: dict, raw: Path, pre: Path) -> None:
    """nnU-Net's own preprocessing (``DefaultPreprocessor.run_case_save``), in this process:
    ``preprocess_dataset`` would run the same per case in spawned workers (minutes here)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    manager = PlansManager(plans)
    conf = manager.get_configuration(configuration)
    folder = pre / conf.data_identifier
    folder.mkdir(parents=True)
    pp = DefaultPreprocessor(verbose=False)
    for case, files in get_filenames_of_train_images_and_targets(str(raw), dataset_json).items():
        pp.run_case_save(str(folder / case), files["images"], files["label"], manager, conf, dataset_json)


def test_nnunet_builds_the_2d_network_from_the_2d_plan(tmp_path, capsys):
    """A 2D nasseg network (CMUNeXt blocks, Skip-Fusion) in nnU-Net's planned 2D configuration."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    arch = {"name": "cmx", "spatial_dims": 2, "in_channels": 3, "out_channels": 1, "stem": {"kernel_size": 3},
            "stages": [{"width": 8, "block": {"type": "cmunext", "kernel_size": 3}, "skip": {"type": "skip_fusion"},
                        "decoder_depth": 0},
                       {"width": 16, "block": {"type": "cmunext", "kernel_size": 5}},
                       {"width": 24, "block": {"type": "conv"}}, {"width": 32, "block": {"type": "conv"}},
                       {"width": 32, "block": {"type": "conv"}}],
            "deep_supervision": True}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(arch))
    assert main(["export", str(tmp_path / "a.yaml"), "--format", "nnunet", "-o", str(tmp_path / "o"),
                 "--plans", str(FIXTURE)]) == 0
    assert "rounded up from nnU-Net's [32, 32] to the network's size multiple" not in capsys.readouterr().out
    plans = json.loads((tmp_path / "o" / "nnUNetPlans_nasseg.json").read_text())
    conf = PlansManager(plans).get_configuration("2d_nasseg")
    assert conf.patch_size == [32, 32] and conf.batch_size == 10 and conf.data_identifier == "nnUNetPlans_2d"
    torch.set_num_threads(1)
    net = nnUNetTrainer.build_network_architecture(PlansManager(plans), conf, 1, 2, enable_deep_supervision=True)
    outs = net(torch.randn(2, 1, *conf.patch_size))
    assert [tuple(o.shape[2:]) for o in outs] == [(32, 32), (16, 16), (8, 8), (4, 4)]  # 5 stages: 4 outputs
    weights = np.array([1 / 2 ** i for i in range(len(outs))])
    weights[-1] = 0  # nnU-Net's weighting (nnUNetTrainer._build_loss)
    loss = DeepSupervisionWrapper(lambda y, t: torch.nn.functional.cross_entropy(y, t[:, 0].long()),
                                  weights / weights.sum())
    target = [torch.randint(0, 2, (2, 1, *o.shape[2:])) for o in outs]
    loss(outs, target).backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if "decoder.heads.2" not in n)


def test_patch_rounded_up_to_the_network_multiple():
    from nasseg.arch import load_arch
    from nasseg.nnunet.export import plans_with_network

    arch = load_arch({**ARCH3D, "stages": ARCH3D["stages"] + [{"width": 20}, {"width": 24}]})  # multiple 32
    plans = json.loads(FIXTURE.read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [40, 56, 40]
    out, name = plans_with_network(plans, arch, "p.json")
    assert out["configurations"][name]["patch_size"] == [64, 64, 64]
    assert out["plans_name"] == "nnUNetPlans_nasseg" and plans["plans_name"] == "nnUNetPlans"


def test_strides_that_are_not_the_network_are_refused():
    from nasseg.errors import ConfigError
    from nasseg.nnunet.network import NassegUNet

    arch = {k: v for k, v in ARCH3D.items() if k not in ("in_channels", "out_channels")}
    with pytest.raises(ConfigError, match="strides.*is not this network's downsampling"):
        NassegUNet(input_channels=1, num_classes=2, arch=arch, strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]])


def test_png_raw_dataset_trains(tmp_path, monkeypatch):
    write_png_dataset(tmp_path / "raw")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    arch = {"name": "t2", "spatial_dims": 2, "in_channels": 2, "out_channels": 1,
            "stages": [{"width": 4}, {"width": 8}]}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(arch))
    assert main(["train", str(tmp_path / "a.yaml"), "--data", "Dataset502_Discs", "--epochs", "1", "--batch-size", "4",
                 "--threads", "1", "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["kind"] == "nnunet"
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == [f"disc_{i:02d}" for i in range(8)]


@pytest.mark.parametrize("change, message", [
    ({"labels": {"background": 0, "whole": [1, 2], "core": [2]}, "regions_class_order": [1, 2]},
     "labels 'whole': region-based labels are not supported"),
    ({"labels": {"background": 0, "disc": 1, "ignore": 2}}, "labels 'ignore': nnU-Net's ignore label"),
    ({"labels": {"background": 0, "disc": 2}}, "'labels' values must be 0..K-1"),
    ({"file_ending": ".jpg"}, "file_ending '.jpg' is not supported"),
    ({"numTraining": 9}, "numTraining is 9 but 8 training cases"),
    ({"channel_names": {"0": "grey", "1": "grey2", "2": "x"}}, "disc_00_0002.png: missing"),
])
def test_bad_raw_datasets_are_one_line(tmp_path, capsys, change, message):
    root = write_png_dataset(tmp_path)
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, **change}))
    code = main(["train", "unet", "--data", str(root), "--epochs", "1", "--device", "cpu", "--no-progress",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_decathlon_and_its_nnunet_layout_give_the_same_cases(tmp_path):
    """The planner comparison reads the Decathlon data in nnU-Net's layout: same cases, classes,
    voxels and preprocessing as the Decathlon reader."""
    from test_data_volumetric import write_decathlon

    from nasseg.data import load_dataset, resolve_data
    from nasseg.nnunet.planners import decathlon_to_raw

    src = write_decathlon(tmp_path / "dec", n=4, modality=("MRI",), scales=(1.0,))
    raw = decathlon_to_raw(src, tmp_path / "raw", 990, "Dec")
    a = load_dataset(resolve_data(str(src)), cache=False)
    b = load_dataset(resolve_data(str(raw)), cache=False)
    assert resolve_data(str(raw)).kind == "nnunet" and b.case_ids == a.case_ids and b.class_names == a.class_names
    assert b.info["preprocessing"]["target_spacing"] == a.info["preprocessing"]["target_spacing"]
    for i in range(len(a)):
        assert torch.equal(torch.as_tensor(a.images[i]), torch.as_tensor(b.images[i]))
        assert torch.equal(torch.as_tensor(a.labels[i]), torch.as_tensor(b.labels[i]))


@pytest.mark.slow
def test_fixture_is_what_nnunet_plans(tmp_path):
    """nnU-Net's fingerprint + ExperimentPlanner (spawned workers: minutes on a loaded CPU)
    plan write_blobs' dataset as the committed fixture says."""
    from nasseg.nnunet.planners import nnunet_plan

    raw = write_blobs(tmp_path / "raw")
    got = nnunet_plan(raw, tmp_path)
    want = json.loads(FIXTURE.read_text())["configurations"]["3d_fullres"]
    assert got["patch_size"] == want["patch_size"] and got["batch_size"] == want["batch_size"]
    assert got["spacing"] == want["spacing"][::-1]  # SimpleITK's (z, y, x) -> the files' axes


def test_an_unknown_dataset_name_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert main(["train", "unet", "--data", "Dataset777_Nope", "--no-progress"]) == 2
    assert "Dataset777_Nope: no such dataset folder (set nnUNet_raw to name an nnU-Net dataset)" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert main(["train", "unet", "--data", "Dataset777_Nope", "--no-progress"]) == 2
    assert f"no folder Dataset777_Nope under $nnUNet_raw ({tmp_path})" in capsys.readouterr().err


def test_export_a_study_trial_for_nnunet(tmp_path, capsys):
    """``STUDY#N``: the trial's network as the study trained it, into nnU-Net's 2D plan."""
    from test_search_helpers import arch_yaml, make_study

    study = make_study(tmp_path, initial_archs=[arch_yaml(tmp_path, "small", 4)], budget={"trials": 1}, epochs=1)
    assert main(["search", str(study), "--no-progress"]) == 0
    assert main(["export", f"{study}#0", "--format", "nnunet", "-o", str(tmp_path / "nn"),
                 "--plans", str(FIXTURE)]) == 0
    assert "2d_nasseg" in capsys.readouterr().out
    conf = json.loads((tmp_path / "nn" / "nnUNetPlans_nasseg.json").read_text())["configurations"]["2d_nasseg"]
    stages = conf["architecture"]["arch_kwargs"]["arch"]["stages"]
    assert [s["width"] for s in stages] == [4, 4, 4] and conf["patch_size"] == [32, 32]
