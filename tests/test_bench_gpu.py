"""``nasseg bench gpu --tiny``: the device benchmark's code on the CPU, writing its documented files."""
from __future__ import annotations

import json

from pathlib import Path

import pytest

from nasseg.bench.gpu import KEYS, PARTS, _busi_folder
from nasseg.cli import main
from nasseg.errors import ConfigError

QUICKSTART = str(Path(__file__).resolve().parents[1] / "studies" / "quickstart.yaml")


def test_tiny_bench_writes_every_part_with_its_documented_keys(tmp_path, capsys):
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--per-gpu", "1", "--study", QUICKSTART]) == 0
    out = capsys.readouterr().out
    assert "not GPU numbers" in out
    # the longest part runs last, so that a time limit on the device costs the fewest parts
    assert [line.split()[1] for line in out.splitlines() if line.startswith("running ")] \
        == ["train_throughput", "bf16_fraction", "glims_3d", "trials_per_gpu"]
    assert {p.name for p in tmp_path.iterdir()} == {f"{p}.json" for p in PARTS} | {"summary.md"}
    for part in PARTS:
        report = json.loads((tmp_path / f"{part}.json").read_text())
        assert set(KEYS[part]) | {"part", "what", "tiny", "device", "versions"} <= set(report), part
        assert report["tiny"] is True and report["device"] == "cpu"
    train = json.loads((tmp_path / "train_throughput.json").read_text())
    assert train["nasseg"]["images_per_s"] > 0 and train["authors_loop"]["images_per_s"] > 0
    assert train["ratio"] == train["nasseg"]["images_per_s"] / train["authors_loop"]["images_per_s"]
    rows = json.loads((tmp_path / "trials_per_gpu.json").read_text())["rows"]
    assert [r["trials_per_gpu"] for r in rows] == [1] and rows[0]["complete"] == 2 and rows[0]["trials_per_hour"] > 0
    glims = json.loads((tmp_path / "glims_3d.json").read_text())
    assert glims["ms_per_step"] > 0 and glims["peak_memory_mb"] is None  # no allocator peak on the CPU
    frac = json.loads((tmp_path / "bf16_fraction.json").read_text())
    assert frac["fraction"] is None and "unknown" in frac["peak_source"]  # no bf16 peak claimed for a CPU
    assert "--tiny: CPU smoke run" in (tmp_path / "summary.md").read_text()


def test_peak_fraction_formula():
    from nasseg.bench.gpu import bf16_fraction
    import torch

    out = bf16_fraction({"nasseg": {"images_per_s": 1000.0}}, 32, torch.device("cpu"), peak_tflops=100.0)
    assert out["fraction"] == 2 * out["macs_per_image"] * 3 * 1000.0 / 100e12
    assert out["peak_source"] == "--peak-tflops"


def test_parts_are_written_as_they_end_and_can_be_run_alone(tmp_path, capsys):
    """The device run is one call, and a part can be run again alone: each part's file is
    written when it ends, the summary says which parts were not run, and part 4 alone reads
    part 1 from an earlier successful file (or is refused before anything runs)."""
    code = main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "glims_3d,bf16_fraction"])
    assert code == 2 and not any(tmp_path.iterdir())  # bf16_fraction without part 1: refused up front
    assert "needs part 1's images/s" in capsys.readouterr().err
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "glims_3d"]) == 0
    out = capsys.readouterr().out
    assert "running glims_3d (1 of 1) ..." in out and "glims_3d done in" in out
    assert {p.name for p in tmp_path.iterdir()} == {"glims_3d.json", "summary.md"}
    summary = (tmp_path / "summary.md").read_text()
    assert "## 1. Training throughput, cmunext\n\nnot run" in summary and "glims_tiny at 1x4x16x16x16" in summary
    (tmp_path / "train_throughput.json").write_text(json.dumps({"part": "train_throughput", "error": "x"}))
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "bf16_fraction"]) == 2
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "train_throughput"]) == 0
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "bf16_fraction"]) == 0
    rate = json.loads((tmp_path / "train_throughput.json").read_text())["nasseg"]["images_per_s"]
    frac = json.loads((tmp_path / "bf16_fraction.json").read_text())
    assert frac["images_per_s"] == rate and frac["seconds"] >= 0
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "glims"]) == 2
    assert "unknown part(s) ['glims']" in capsys.readouterr().err


def test_a_failing_part_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    # a CUDA error cannot happen on the CPU: the part's function is replaced by one that raises it
    from nasseg.bench import gpu as bg

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(bg, "glims_step", broken)
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--parts", "glims_3d,trials_per_gpu",
                 "--per-gpu", "1", "--study", QUICKSTART]) == 1
    out = capsys.readouterr().out
    assert "1 part(s) failed: glims_3d" in out
    glims = json.loads((tmp_path / "glims_3d.json").read_text())
    assert glims["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert json.loads((tmp_path / "trials_per_gpu.json").read_text())["rows"][0]["complete"] == 2
    assert "**failed** after" in (tmp_path / "summary.md").read_text()


def test_bench_gpu_takes_its_inputs_as_arguments_and_writes_under_the_working_directory(tmp_path, monkeypatch,
                                                                                          capsys):
    """Run from a folder that is not the checkout: nothing is read from or written into
    the checkout; a part whose input is not given is refused, naming the flag."""
    repo = Path(__file__).resolve().parents[1]
    before = {p for p in (repo / "runs").rglob("*")} if (repo / "runs").exists() else set()
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "gpu", "--tiny", "--parts", "trials_per_gpu"]) == 2
    assert "part 2 (trials_per_gpu) needs --study" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"part 1 \(train_throughput\) needs --data"):
        _busi_folder(None)  # no ../shared beside the checkout is looked for
    assert main(["bench", "gpu", "--tiny", "--parts", "glims_3d"]) == 0
    assert {p.name for p in (tmp_path / "runs" / "bench_gpu_tiny").iterdir()} == {"glims_3d.json", "summary.md"}
    after = {p for p in (repo / "runs").rglob("*")} if (repo / "runs").exists() else set()
    assert after == before
