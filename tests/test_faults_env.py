"""Fault injection, the environment: faults a user can fix are one line naming the path,
the cause and the fix (exit 2), and no message shows a database password.

Issue 20: a read-only or full disk printed "internal error ... enforce fail at
inline_container.cc ... please report it" (exit 1) without the path or the cause; ``--out``
naming a file where a folder is needed (or the reverse) did the same; storage errors echoed
the database password from the URL.

The tests run as root, where permissions do not stop writes, and no read-only file system
can be mounted: the faults are real writes into /sys (EACCES, EPERM), /dev/full (ENOSPC) and
below a file (ENOTDIR); only EROFS is raised by hand.
"""
from __future__ import annotations

import errno
import os

import pytest
import yaml
from faults import TINY_ARCH

from nasseg.cli import main
from nasseg.errors import environment_error, mask_url, writing

OUT = "write the output somewhere else (-o/--out, --run-dir or output_dir)"


def _fault(action) -> OSError:
    with pytest.raises(OSError) as err:
        action()
    return err.value


def _write(path, mode="w"):
    with writing(path), open(path, mode) as f:  # a failed write or close is named by `writing`
        f.write(b"x" if "b" in mode else "x")


@pytest.mark.parametrize("make,message", [
    (lambda t: _fault(lambda: _write("/dev/full", "wb")), f"/dev/full: no space left on the device; free space there, or {OUT}"),
    (lambda t: _fault(lambda: _write("/sys/nasseg_fault.txt")), f"/sys/nasseg_fault.txt: permission denied; give yourself access, or {OUT}"),
    (lambda t: _fault(lambda: os.mkdir("/sys/nasseg_fault")), f"/sys/nasseg_fault: operation not permitted; give yourself access, or {OUT}"),
    (lambda t: _fault(lambda: _write(t / "file" / "x.png")), "{t}/file/x.png: part of this path is a file, not a folder; name a folder (or move the file away)"),
    (lambda t: _fault(lambda: _write(t)), "{t}: is a folder where a file is needed; name a file, e.g. a .yaml, .onnx or .png inside it"),
    (lambda t: _fault(lambda: os.mkdir(t / "file")), "{t}/file: exists as a file where a folder is needed; name a new path (or move the existing one away)"),
    (lambda t: OSError(errno.EROFS, os.strerror(errno.EROFS), "/media/ro/run"), f"/media/ro/run: is on a read-only file system; {OUT}"),
])
def test_each_fixable_os_error_names_the_path_the_cause_and_the_fix(tmp_path, make, message):
    (tmp_path / "file").write_text("not a folder")
    err = make(tmp_path)
    assert str(environment_error(err)) == message.format(t=tmp_path)
    try:  # also when a library wraps it
        raise RuntimeError("wrapped") from err
    except RuntimeError as wrapped:
        assert str(environment_error(wrapped)) == message.format(t=tmp_path)


def test_other_errors_are_not_taken_for_environment_faults():
    assert environment_error(KeyError("trial")) is None
    assert environment_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) is None


def _train(tmp_path, run_dir, capsys) -> tuple[int, list[str]]:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_ARCH))
    code = main(["train", str(tmp_path / "tiny.yaml"), "--data", "synthetic", "--size", "16", "--max-cases", "8",
                 "--epochs", "1", "--batch-size", "4", "--threads", "1", "--device", "cpu", "--no-progress",
                 "--run-dir", str(run_dir)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("where,message", [
    ("{t}/file/run", "{t}/file/run: part of this path is a file, not a folder; name a folder"),
    ("/sys/nasseg_run", "/sys/nasseg_run: operation not permitted; give yourself access, or " + OUT),
])
def test_a_run_folder_that_cannot_be_made_is_one_line_exit_2(tmp_path, capsys, where, message):
    (tmp_path / "file").write_text("not a folder")
    code, err = _train(tmp_path, where.format(t=tmp_path), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("nasseg: error: " + message.format(t=tmp_path))


def test_a_checkpoint_that_cannot_be_written_names_the_file_not_inline_container(tmp_path, capsys):
    # torch.save said "[enforce fail at inline_container.cc:747] . open file failed with strerror:
    # Permission denied" (exit 1); the checkpoint file here leads into /sys, where nothing is written
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt.tmp").symlink_to("/sys/nasseg_checkpoint.pt")
    code, err = _train(tmp_path, run, capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0] == f"nasseg: error: {run}/checkpoint.pt.tmp: permission denied; give yourself access, or {OUT}"


def test_a_full_disk_is_named_with_the_file(tmp_path):
    err = _fault(lambda: _write("/dev/full"))  # ENOSPC when the buffered write is flushed at close
    assert (err.errno, err.filename) == (errno.ENOSPC, "/dev/full")


URL = "postgresql://user:secret@127.0.0.1:1/db"


def test_mask_url_hides_only_the_password():
    assert mask_url(f"cannot open {URL} (and sqlite:///x.db)") == \
        "cannot open postgresql://user:***@127.0.0.1:1/db (and sqlite:///x.db)"


def test_an_unreachable_database_never_shows_its_password(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "space": "nowhere.yaml", "budget": {"trials": 1}, "epochs": 1,
                                     "storage": URL}))
    for argv in (["pareto", URL], ["pareto", str(study)]):
        code = main(argv)
        out = capsys.readouterr()
        err = out.err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "secret" not in out.out + out.err
        assert "postgresql://user:***@127.0.0.1:1/db" in err[0]
