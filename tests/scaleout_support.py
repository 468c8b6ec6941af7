"""Throwaway servers for the scale-out tests: PostgreSQL from Debian's package, an MLflow
tracking server on it, and polling helpers (a server is ready when it answers, never after a
fixed wait).

PostgreSQL refuses to run as root, so when the tests run as root (CI) the cluster belongs to the
``postgres`` user the Debian package creates (``nobody`` where there is none) and lives in a
fresh folder under the system temporary directory, which that user can reach.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

POSTGRES_INSTALL = "apt-get install -y postgresql"
SERVER_START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    timeout_s: float = SERVER_START_TIMEOUT_S,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than None/False; return that.

    Fails with ``what`` after ``timeout_s`` (a generous bound, not an expected duration), or at
    once when ``process`` exits meanwhile (with the tail of ``log``).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: the process exited with {process.returncode}.\n{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s:.0f} s")
        time.sleep(0.1)  # the pause between two polls


def http_json(url: str) -> Any | None:
    """GET ``url`` and decode its JSON body; None while the server does not answer."""
    import json

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
    """Ask ``process`` to stop with ``sig``; kill it if it has not within ``timeout_s``."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding a server, else the folder of a
    ``postgres`` on PATH; None when no server binary is installed."""
    found = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        if path.parent.parent.name.isdigit()
    ]
    if found:
        return max(found, key=lambda folder: int(folder.parent.name))
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder on a free local port (trust auth, user
    ``postgres``); :meth:`create_database` gives each test its own database."""

    bindir: Path
    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def _connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, connect_timeout=5
        )

    def _answers(self) -> bool:
        import psycopg

        try:
            self._connect().close()
        except psycopg.OperationalError:
            return False
        return True

    def start(self) -> None:
        user = _unprivileged_user()
        run_as: dict[str, Any] = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}
        data = self.folder / "data"
        data.mkdir()
        if user is not None:
            for path in (self.folder, data):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, text=True, cwd=self.folder, **run_as,
        )  # fmt: skip
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-h", "127.0.0.1", "-k", str(self.folder),
                 # a test database: durability is not what is tested
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, **run_as,
            )  # fmt: skip
        wait_until(self._answers, "PostgreSQL accepting connections", process=self.process,
                   log=self.log)  # fmt: skip

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        connection = self._connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple]:
        connection = self._connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGINT)  # "fast shutdown"
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres(bindir: Path) -> Iterator[ThrowawayPostgres]:
    folder = Path(tempfile.mkdtemp(prefix="robust-mmr-postgres-"))
    server = ThrowawayPostgres(bindir, folder, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    """``mlflow server`` on a free local port, runs in ``backend_store_uri``, artifacts proxied
    into the folder ``artifacts``; yields its URL once ``/health`` answers."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow), "server", "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    try:
        wait_until(healthy, "MLflow tracking server /health", process=process, log=log)
        yield url
    finally:
        stop(process)
