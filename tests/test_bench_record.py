"""`nasseg bench record`: recorders started side by side share the work and resume."""
import gzip

import pandas as pd

from nasseg.bench.record import RecordConfig, iter_archs, record
from nasseg.data import load_dataset, resolve_data
from nasseg.search.space_parse import load_space
from nasseg.store.claims import job_lock

SPACE = "search_spaces/lightweight_2d.yaml"


def test_a_run_another_recorder_holds_is_left_to_it_and_taken_up_on_resume(shared_data, tmp_path):
    cfg = RecordConfig(name="t", data=str(shared_data / "dsb2018_96"), space=SPACE, size=32, n_archs=1,
                       seeds=[0, 1], epochs=1, n_train=8, n_val=4, n_test=4, out=str(tmp_path))
    ds = load_dataset(resolve_data(cfg.data, size=cfg.size))
    first = next(iter_archs(load_space(SPACE), cfg.arch_seed, ds.in_channels, ds.out_channels))["arch_id"]
    table = tmp_path / "t.csv.gz"
    with job_lock(tmp_path / ".t.locks" / f"{first}-s0.lock", wait=True):  # as a second recorder would hold it
        record(cfg, log=lambda _: None)
    with gzip.open(table, "rt") as fh:
        runs = pd.read_csv(fh)[["arch_id", "seed"]].drop_duplicates()
    assert runs.values.tolist() == [[first, 1]]
    record(cfg, log=lambda _: None)  # the holder died without recording: the run is free again
    with gzip.open(table, "rt") as fh:
        rows = pd.read_csv(fh)
    assert sorted(rows["seed"]) == [0, 1] and set(rows["arch_id"]) == {first}  # one epoch each, none twice


def _table(path, seeds, flip):
    """20 architectures x ``seeds`` x 2 epochs; seed 1 ranks them in reverse at epoch 2 when ``flip``."""
    rows = [{"arch_id": f"a{i:02d}", "seed": s, "epoch": e, "val_dice": (20 - i if flip and s == 1 and e == 2 else i) / 20,
             "test_dice": 0.5, "params": 1000, "gmacs": 0.1}
            for i in range(20) for s in seeds for e in (1, 2)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_bench_noise_prints_the_seed_to_seed_rank_agreement_per_epoch(tmp_path, capsys):
    from nasseg.cli import main

    assert main(["bench", "noise", _table(tmp_path / "t.csv.gz", [0, 1], flip=True), "--boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 1.00 | [1.00, 1.00] | 5% |" in out  # a00 scores 0 under both seeds
    assert "| 2 | -1.00 | [-1.00, -1.00] |" in out
    assert main(["bench", "noise", _table(tmp_path / "one.csv.gz", [0], flip=False)]) == 2
    assert "one training seed recorded; seed agreement needs two" in capsys.readouterr().err
