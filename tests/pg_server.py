"""A throwaway PostgreSQL server for tests: initdb into a temp folder, listen on 127.0.0.1, stop after.

Debian's `postgresql` puts its binaries in /usr/lib/postgresql/<version>/bin (`.ci/run` installs it).
initdb and postgres refuse to run as root, so as root they run as the `postgres` user in a folder it
owns. Missing binaries skip the test, or fail it when CI=true.

Fixtures (imported by conftest.py):
    postgres_url  session: the URL of the running server's `postgres` database (trust authentication)
    postgres_db   function: the URL of a fresh, empty database made from an empty template
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEMPLATE = "digest_test_template"
_numbers = itertools.count(1)


def find_pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb, pg_ctl and postgres (or $DIGEST_PG_BIN)."""
    candidates = [Path(os.environ["DIGEST_PG_BIN"])] if os.environ.get("DIGEST_PG_BIN") else []
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    for path in candidates:
        if all((path / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temp folder; `start()` then `stop()`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self.as_root = os.geteuid() == 0
        if self.as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {"user": "postgres", "group": "postgres"} if self.as_root else {}
        return subprocess.run(
            list(args),
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
            **extra,
        )

    def start(self) -> None:
        init = self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        for _attempt in range(3):  # a free port can be taken between finding and binding it
            self.port = free_port()
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            started = self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                "-w", "-t", "120", "start",
            )  # fmt: skip
            if started.returncode == 0:
                return
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log[-2000:]}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def admin(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE) on the server of `url`."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def require_postgres() -> Path:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = "PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does it)"
        if IN_CI:
            pytest.fail(f"required in CI but missing: {reason}")
        pytest.skip(reason)
    return bin_dir


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """Start a throwaway server and stop it (pg_ctl stop -m fast) after the block."""
    server = PgServer(require_postgres())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A running throwaway PostgreSQL server for the whole session: the URL of its `postgres` database."""
    with running_server() as server:
        admin(server.url, f"CREATE DATABASE {TEMPLATE} TEMPLATE template0 ENCODING 'UTF8'")
        yield server.url


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database (created from an empty template, dropped after the test)."""
    name = f"digest_test_{os.getpid()}_{next(_numbers)}"
    admin(postgres_url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    admin(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
