"""A throwaway PostgreSQL server on loopback for the RDB storage tests.

``python tests/pg_server.py start`` initialises a cluster in a temporary folder, starts it on
a free port of 127.0.0.1 (trust authentication: loopback only, deleted afterwards) and prints
``export NASSEG_TEST_POSTGRES_URL=... NASSEG_TEST_POSTGRES_DIR=...`` for a shell to ``eval``;
``python tests/pg_server.py stop DIR`` stops it and removes the folder. PostgreSQL refuses to
run as root, so under root the server runs as the ``postgres`` user (``runuser``).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER = "nasseg"


def find_bin(name: str) -> str | None:
    """``name`` on PATH or in Debian's ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else None


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and runuser is missing (PostgreSQL refuses to run as root)")
    return [runuser, "-u", "postgres", "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> tuple[str, Path]:
    """Start a server; returns ``(url, folder)``. Raises RuntimeError with the reason."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                           "install Debian's postgresql package")
    folder = Path(tempfile.mkdtemp(prefix="nasseg-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o700)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run(_as_server_user([initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8"]), **run)
        opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"),
                                        "-w", "start"]), **run)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {detail.strip()[-300:]}") from None
    return f"postgresql://{USER}@127.0.0.1:{port}/postgres", folder


def stop(folder: Path) -> None:
    """Stop the server in ``folder`` and delete it."""
    pg_ctl = find_bin("pg_ctl")
    if pg_ctl and (folder / "data").is_dir():
        subprocess.run(_as_server_user([pg_ctl, "-D", str(folder / "data"), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    import sqlalchemy

    t0 = time.monotonic()
    while True:
        try:
            with sqlalchemy.create_engine(url).connect():
                return
        except sqlalchemy.exc.OperationalError:
            if time.monotonic() - t0 > timeout_s:
                raise
            time.sleep(0.5)


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"]:
        url, where = start()
        print(f"export NASSEG_TEST_POSTGRES_URL={url} NASSEG_TEST_POSTGRES_DIR={where}")
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(Path(sys.argv[2]))
    else:
        sys.exit("usage: pg_server.py start | stop DIR")
