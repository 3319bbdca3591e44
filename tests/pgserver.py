"""A throwaway PostgreSQL server for the test suite, started with the machine's initdb/pg_ctl.

Tests use a real server, not a mock: SKIP LOCKED claims, JSONB and time zones behave differently
from SQLite. As root (CI), the server runs as the ``postgres`` user, since initdb refuses root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SEARCH = ["/usr/local/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"]


def find_binary(name: str) -> str | None:
    for folder in SEARCH:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self) -> None:
        self.initdb = find_binary("initdb")
        self.pg_ctl = find_binary("pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="alimcast-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")

    @property
    def available(self) -> str | None:
        """None when a server can be started, else the reason it cannot."""
        if not self.initdb or not self.pg_ctl:
            return "initdb/pg_ctl not found (install Debian's postgresql)"
        if self.as_root:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run the server as"
        return None

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        if self.as_root:
            shutil.chown(self.root, user="postgres")
            os.chmod(self.root, 0o755)
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C"])
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off " \
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        self._options = options
        self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"])
        self._wait_listening()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (fast: every connection dropped, committed work kept; this server runs with
        synchronous_commit=off, so an immediate stop could lose commits) and start it again on the same
        port and data, after ``down_seconds``: the clients must reconnect by themselves."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])
        time.sleep(down_seconds)
        self._run([self.pg_ctl, "-D", str(self.data), "-o", self._options, "-l", str(self.root / "log"), "-w",
                   "start"])
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def _has_c_utf8() -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in out.splitlines())
