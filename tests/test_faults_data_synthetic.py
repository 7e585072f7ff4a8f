"""Fault injection, generated data: a typo in the case count is refused, not generated.

Issue 20: ``data.n_cases: 100000000000`` printed nothing and grew memory until killed.
The commands run in a subprocess whose address space is capped 1 GiB above what its imports
need, so that without the limits the test fails (out of memory or timeout) instead of taking
the machine's memory.
"""
from __future__ import annotations

import yaml
from faults import TINY_ARCH, run_cli

from nasseg.data.synthetic import MAX_SYNTHETIC_BYTES, synthetic_bytes

LIMIT = ("import resource, torch, nasseg.cli, nasseg.train.engine, nasseg.data.synthetic, nasseg.arch\n"
         "vm = int([l for l in open('/proc/self/status') if l.startswith('VmSize')][0].split()[1]) * 1024\n"
         "resource.setrlimit(resource.RLIMIT_AS, (vm + 1024 * 2**20, resource.RLIM_INFINITY))")


def _train(tmp_path, data: dict):
    (tmp_path / "arch.yaml").write_text(yaml.safe_dump(TINY_ARCH))
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    return run_cli("train", str(tmp_path / "arch.yaml"), "--data", str(tmp_path / "data.yaml"), "--epochs", "1",
                   "--threads", "1", "--no-progress", "--run-dir", str(tmp_path / "run"), preamble=LIMIT,
                   timeout=120)


def test_a_case_count_typo_is_one_line_exit_2_at_once(tmp_path):
    r = _train(tmp_path, {"kind": "synthetic", "synthetic": {"n_cases": 100_000_000_000}})
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr[-2000:]
    assert err[0] == (f"nasseg: error: {tmp_path / 'data.yaml'}: synthetic.n_cases: Input should be less than "
                      "or equal to 100000 (got 100000000000)")


def test_generated_data_over_the_memory_limit_is_refused_with_the_number(tmp_path):
    r = _train(tmp_path, {"kind": "synthetic", "size": 512, "synthetic": {"n_cases": 20_000}})
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr[-2000:]
    need = synthetic_bytes(20_000, 1, (512, 512)) / 2 ** 30
    assert err[0] == (f"nasseg: error: synthetic data: 20,000 cases of 512x512 x 1 channel need {need:,.1f} GiB "
                      f"of memory, over the {MAX_SYNTHETIC_BYTES / 2 ** 30:.0f} GiB limit; lower "
                      "synthetic.n_cases or size")
