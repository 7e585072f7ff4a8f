"""The quickstart: its synthetic ``context`` task, and a Pareto member of a (shortened) run of
``studies/quickstart.yaml`` exported to ONNX and checked with onnxruntime against PyTorch."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from nasseg.cli import main
from nasseg.data import load_dataset, resolve_data

REPO = Path(__file__).resolve().parent.parent


def test_context_task_is_seeded_binary_and_leaves_the_default_task_alone():
    a = load_dataset(resolve_data("synthetic", task="context", size=48, n_cases=6), cache=False)
    b = load_dataset(resolve_data("synthetic", task="context", size=48, n_cases=4), cache=False)
    assert a.num_classes == 2 and tuple(a.images.shape) == (6, 1, 48, 48)
    assert torch.equal(a.images[:4], b.images) and torch.equal(a.labels[:4], b.labels)  # case i = (seed, i)
    frac = a.labels.float().mean().item()
    assert 0.05 < frac < 0.4 and all(int(lb.sum()) > 0 for lb in a.labels)  # every case has a lesion
    lesions = load_dataset(resolve_data("synthetic", size=48, n_cases=4), cache=False)
    assert not torch.equal(lesions.images, b.images)  # the default task is unchanged and different


def test_quickstart_pareto_member_exports_to_onnx_within_1e4(tmp_path, capsys):
    import onnxruntime as ort

    from nasseg.infer import load_network
    from nasseg.search.results import front_table
    from nasseg.store import locate

    out = tmp_path / "qs"
    assert main(["search", str(REPO / "studies" / "quickstart.yaml"), "--trials", "2", "--epochs", "1",
                 "--workers", "1", "--output-dir", str(out), "--no-progress"]) == 0
    member = int(front_table(locate(out))["trial"].iloc[0])
    capsys.readouterr()
    onnx_file = tmp_path / "member.onnx"
    assert main(["export", f"{out}#{member}", "--format", "onnx", "-o", str(onnx_file)]) == 0
    printed = capsys.readouterr().out
    diff = float(re.search(r"max abs difference\s+([0-9.e+-]+)", printed).group(1))
    assert diff <= 1e-4 and "spatial size dynamic" in printed
    # independently of nasseg's own check: onnxruntime against the PyTorch module on a seeded input
    net = load_network(f"{out}#{member}")
    x = torch.randn(3, 1, 48, 64, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    ref = net.module.eval()(x.contiguous(memory_format=torch.channels_last)).detach().numpy()
    assert got.shape == ref.shape == (3, 1, 48, 64) and np.abs(got - ref).max() <= 1e-4
