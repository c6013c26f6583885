"""A throwaway PostgreSQL server in a temporary folder, for tests and benchmarks.

Found through ``$SEGMENTER_TEST_POSTGRES`` (the folder holding ``initdb``/``pg_ctl``, as
``.ci/run`` exports it), else ``initdb`` on the PATH or Debian's ``/usr/lib/postgresql/*/bin``.
As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER, PASSWORD, DATABASE = "segmenter", "pw-s3cret", "shop"


#: The events contract as a PostgreSQL table (tests and the serve benchmark load it).
EVENTS_TABLE = (
    "CREATE TABLE events (user_id TEXT, timestamp TIMESTAMP, event_type TEXT, order_id TEXT, "
    "item_id TEXT, item_name TEXT, category TEXT, quantity DOUBLE PRECISION, amount DOUBLE "
    "PRECISION, text TEXT, rating DOUBLE PRECISION, channel TEXT)"
)


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is not installed."""
    candidates = [os.environ.get("SEGMENTER_TEST_POSTGRES")]
    which = shutil.which("initdb")
    candidates.append(str(Path(which).resolve().parent) if which else None)
    candidates += [str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def temporary_server(bin_dir: Path) -> Iterator[str]:
    """Start a server on a free local port; yields ``postgresql://USER:PASSWORD@.../DATABASE``."""
    root = Path(tempfile.mkdtemp(prefix="segmenter-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    (root / "pw").write_text(PASSWORD)
    if as_user:
        shutil.chown(root / "pw", "postgres", "postgres")

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={root / 'pw'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "log"),
            "start",
        )
        run(
            str(bin_dir.parent / "bin" / "createdb"),
            "-h",
            str(root),
            "-p",
            str(port),
            "-U",
            USER,
            DATABASE,
        )
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        with contextlib.suppress(Exception):
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
