"""Ray across machines, on one: ``--address`` joins a real ``ray start --head`` cluster on loopback,
results land in a journal file (the shared-disk storage), and a trial whose worker process dies
mid-trial is restarted by Tune and completes on the same Optuna trial.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_search_helpers import TINY_SPACE, make_study

from nasseg.search.results import open_result
from nasseg.train import train

pytest.importorskip("ray.tune")
pytestmark = pytest.mark.slow


class DiesOnce:
    """The real trainer; the first trial to reach it kills its Ray worker process (a lost worker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, arch, data, cfg, **kw):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return train(arch, data, cfg, **kw)


@pytest.fixture
def ray_head():
    """A head node of our own on loopback, with its own auth token (Ray >= 2.59 authenticates;
    the machine-wide default token file is shared with other Ray users). Yields
    ``(address, env)``: ``env`` is what a driver needs to join it."""
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="nsray")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if head.poll() is not None:
                pytest.skip("ray start --head exited early")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(1)
        else:
            pytest.skip("ray start --head did not come up in 120 s")
        yield f"127.0.0.1:{port}", env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)  # our own head node and its children only
            try:
                head.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


DRIVER = """
import json, sys
from pathlib import Path
from ray import cloudpickle
import test_search_ray_cluster as here
from nasseg.search.ray_backend import run_search_ray
cloudpickle.register_pickle_by_value(here)  # the trainer travels to the workers by value
study, address, marker = sys.argv[1:4]
summary = run_search_ray(study, workers=2, address=address, trainer=here.DiesOnce(Path(marker)), progress=False)
print("SUMMARY", json.dumps(summary))
"""


def test_address_joins_a_cluster_and_a_lost_worker_is_retried(tmp_path: Path, ray_head) -> None:
    address, env = ray_head
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 6]}}}
    log = tmp_path / "shared" / "study.log"
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trials": 2}, sampler="grid", epochs=1,
                            storage=str(log))
    marker = tmp_path / "died"
    env = {**env, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1]),
                                                 env.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(study_yaml), address, str(marker)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists()  # one worker process died mid-trial
    trials = open_result(str(log), "tiny").trials
    assert [t.number for t in trials] == [0, 1] and all(t.state.name == "COMPLETE" for t in trials)
    assert all(t.user_attrs.get("trained") for t in trials)
    assert '"complete": 2' in done.stdout
