"""``nasseg bench gpu --tiny``: the device benchmark's code on the CPU, writing its documented files."""
from __future__ import annotations

import json

from nasseg.cli import main
from nasseg.train.bench_gpu import KEYS, PARTS


def test_tiny_bench_writes_every_part_with_its_documented_keys(tmp_path, capsys):
    assert main(["bench", "gpu", "--tiny", "--out", str(tmp_path), "--per-gpu", "1"]) == 0
    assert "not GPU numbers" in capsys.readouterr().out
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
    from nasseg.train.bench_gpu import bf16_fraction
    import torch

    out = bf16_fraction({"nasseg": {"images_per_s": 1000.0}}, 32, torch.device("cpu"), peak_tflops=100.0)
    assert out["fraction"] == 2 * out["macs_per_image"] * 3 * 1000.0 / 100e12
    assert out["peak_source"] == "--peak-tflops"
