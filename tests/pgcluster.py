"""A private PostgreSQL 15 cluster a test can really stop and start.

The shared server on 127.0.0.1:5432 carries the rest of the suite and must
never be stopped; a test that needs PostgreSQL to go away gets a cluster of its
own instead: ``initdb`` into a fresh directory under /tmp, listening on
127.0.0.1 on a free port (below the ephemeral range; its unix socket inside that directory), trust
authentication for ``postgres``, fsync off.  ``stop()`` and ``start()`` are
``pg_ctl stop -m fast|immediate`` and ``pg_ctl start`` of that cluster.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) the
binaries run as the ``postgres`` OS user (``runuser -u postgres``), and the
directory is owned by it.  One ``initdb`` per test process is copied for each
cluster.

Needs the PostgreSQL 15 server binaries (``/usr/lib/postgresql/15/bin``, or
``$UCS_PG_BINDIR``) and, as root, the ``postgres`` user and ``runuser``.
Without them the tests using :func:`pg_cluster` are skipped, unless
``UCS_REQUIRE_BROWSER=1`` (which CI sets: everything optional is required
there) or ``UCS_REQUIRE_PGCLUSTER=1`` makes that a failure.
"""

from __future__ import annotations

import atexit
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import threads
from twisted.internet.defer import Deferred

BINDIR = Path(os.environ.get("UCS_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
TIMEOUT = 60  # seconds pg_ctl waits for a start or a stop


def required() -> bool:
    return os.environ.get("UCS_REQUIRE_BROWSER") == "1" or os.environ.get("UCS_REQUIRE_PGCLUSTER") == "1"


def missing() -> str | None:
    """Why a private cluster cannot be run here, or ``None``."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(BINDIR / tool, os.X_OK):
            return f"PostgreSQL server binaries not found: no {BINDIR / tool} (apt-get install postgresql-15, or set UCS_PG_BINDIR)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is not installed"
    return None


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A free port below the ephemeral range: while the cluster is stopped, no
    outgoing connection (of this or any process) takes it as its local port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(50):
        port = random.randrange(20000, max(low, 20001))
        if _bindable(port):
            return port
    with socket.socket() as s:  # fall back on one the kernel picks
        s.bind(("127.0.0.1", 0))
        found: int = s.getsockname()[1]
        return found


def _as_postgres(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (as the postgres OS user when we are root); its output, or RuntimeError."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", OS_USER, "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def _private_dir(prefix: str) -> Path:
    """A new directory under /tmp (the postgres user may not reach pytest's tmp_path), owned by postgres."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(OS_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


_template: Path | None = None
_template_lock = threading.Lock()


def template() -> Path:
    """Blocking: a directory whose ``data`` is a fresh ``initdb`` (made once per
    process, removed at exit); each :class:`PgCluster` copies it, as initdb takes
    seconds on a busy machine."""
    global _template
    with _template_lock:
        if _template is None:
            path = _private_dir("ucs-pgtemplate-")
            try:
                _as_postgres([str(BINDIR / "initdb"), "-D", str(path / "data"), "-A", "trust", "-U", "postgres",
                              "-E", "UTF8", "--no-sync", "--no-instructions"], path)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            atexit.register(shutil.rmtree, path, True)
            _template = path
        return _template


class PgCluster:
    """One private cluster. Blocking methods end in ``_blocking``; ``start()``
    and ``stop()`` run them in a thread and return Deferreds (for tests in the
    reactor)."""

    def __init__(self) -> None:
        self.dir = _private_dir("ucs-pgcluster-")
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self.port = free_port()
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return _as_postgres([str(BINDIR / tool), *args], self.dir)
        except RuntimeError as e:
            raise RuntimeError(f"{e}{self.log_tail()}") from None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def init_blocking(self) -> None:
        # a copy of one initdb; cp -a keeps the owner (postgres) and the data directory's mode (0700)
        subprocess.run(["cp", "-a", str(template() / "data"), str(self.data)], check=True, timeout=120)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# tests/pgcluster.py\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\n"
                # fsync off loses nothing when only the server dies (pg_ctl stop -m immediate);
                # synchronous_commit stays on: off, a crash loses the last commits (and the test's CDRs)
                "fsync = off\n"
                "max_connections = 20\nshared_buffers = 16MB\n"
            )

    def start_blocking(self) -> None:
        self._cmd("pg_ctl", "start", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", str(TIMEOUT))
        self.running = True

    def stop_blocking(self, mode: str = "fast") -> None:
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"pg_ctl stop mode {mode!r}: use smart, fast or immediate")
        self._cmd("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(TIMEOUT))
        self.running = False

    def start(self) -> Deferred[None]:
        return threads.deferToThread(self.start_blocking)

    def stop(self, mode: str = "fast") -> Deferred[None]:
        return threads.deferToThread(self.stop_blocking, mode)

    def cleanup(self) -> None:
        """Blocking: stop the server if it runs (immediately), remove the directory."""
        try:
            if self.running or (self.data / "postmaster.pid").exists():
                self.stop_blocking("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# A sync fixture that waits with blockon(), as in conftest.py: an exception in
# an async pytest-twisted fixture's set-up corrupts pytest's fixture state.


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A started private cluster (``.url``), stopped and removed after the test."""
    why = missing()
    if why is not None:
        if required():
            pytest.fail(f"a private PostgreSQL cluster is required (UCS_REQUIRE_BROWSER=1 / UCS_REQUIRE_PGCLUSTER=1) "
                        f"but {why}", pytrace=False)
        pytest.skip(why)
    cluster = PgCluster()
    try:
        pytest_twisted.blockon(threads.deferToThread(cluster.init_blocking))
        pytest_twisted.blockon(cluster.start())
        yield cluster
    finally:
        pytest_twisted.blockon(threads.deferToThread(cluster.cleanup))
