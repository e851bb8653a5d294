"""The plugin tests' stack: a plugin host on UCS's real parts (store, bus,
registry, sessions, directory, shared data, caller lookup), plugin files in a
temporary directory, and the log captured.

The other plugin test modules import this one (``from test_plugins_harness import …``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from ucs.api.registry import Registry
from ucs.api.session import Session, SessionManager
from ucs.bus import EventBus
from ucs.constants import SessionState
from ucs.directory import api as directory_api
from ucs.directory.directory import Directory
from ucs.directory.model import User
from ucs.lookup.service import LookupService
from ucs.plugins import api as plugins_api
from ucs.plugins.facade import PluginContext
from ucs.plugins.host import PluginHost
from ucs.plugins.shared import SharedData
from ucs.store import open_store

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "plugins" / "examples"


def seed(name: str) -> str:
    """The text of a seed example plugin (plugins/examples/NAME.py)."""
    return (SEEDS / f"{name}.py").read_text(encoding="utf-8")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


class LogCapture:
    """Every log event while it is open."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._waiting: list[tuple[str, Deferred[dict[str, Any]]]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        text = formatEvent(event)
        for waiting in list(self._waiting):
            if waiting[0] in text:
                self._waiting.remove(waiting)
                waiting[1].callback(event)

    def wait_for(self, text: str, timeout: float = 10.0) -> Deferred[dict[str, Any]]:
        """Fires with the first event (from now) whose text has ``text``; fails after
        ``timeout`` seconds of real time (a thread that never logs it)."""
        d: Deferred[dict[str, Any]] = Deferred()
        self._waiting.append((text, d))
        return d.addTimeout(timeout, reactor)

    def __enter__(self) -> LogCapture:
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        globalLogPublisher.removeObserver(self)

    def texts(self, level: LogLevel | None = None, namespace: str | None = None) -> list[str]:
        return [
            formatEvent(e) for e in self.events
            if (level is None or e.get("log_level") == level)
            and (namespace is None or str(e.get("log_namespace", "")).startswith(namespace))
        ]

    def having(self, text: str) -> list[dict[str, Any]]:
        return [e for e in self.events if text in formatEvent(e)]


@pytest.fixture(name="logs")
def logs_fixture() -> Iterator[LogCapture]:
    """Import ``logs_fixture`` to use the ``logs`` fixture (the log captured)."""
    with LogCapture() as capture:
        yield capture


@pytest.fixture(name="sqlite_store")
def sqlite_store_fixture(tmp_path: Path) -> Iterator[Any]:
    """Import ``sqlite_store_fixture`` to use the ``sqlite_store`` fixture (an open SQLite store)."""
    s = pytest_twisted.blockon(open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor))
    try:
        yield s
    finally:
        pytest_twisted.blockon(s.close())


class FakeTimer:
    """What hooks are timed with: each reading is ``step`` seconds after the last."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


class PluginStack:
    def __init__(self, store: Any, plugin_dir: Path, *, budget: float = 0.05, timer: Any = None,
                 packages: Any = (), classes: dict[str, str] | None = None, agents: Any = None,
                 call_control: Any = None, lookups: LookupService | None = None, bus: EventBus | None = None,
                 registry: Registry | None = None, sessions: SessionManager | None = None,
                 directory: Directory | None = None) -> None:
        self.store = store
        self.dir = plugin_dir
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.bus = bus or EventBus()
        self.registry = registry or Registry()
        self.sessions = sessions or SessionManager(self.clock)
        self._own_directory = directory is None
        self.directory = directory or Directory(store, self.bus)
        self.shared = SharedData(store, self.bus)
        self.lookups = lookups if lookups is not None else LookupService([])
        kw: dict[str, Any] = {"timer": timer} if timer is not None else {}
        self.ctx = PluginContext(
            reactor, bus=self.bus, registry=self.registry, sessions=self.sessions, directory=self.directory,
            agents=agents, call_control=call_control, shared=self.shared, lookups=self.lookups, budget=budget,
            **kw,
        )
        self.host = PluginHost(self.ctx, plugin_dir, packages=list(packages), classes=classes)
        plugins_api.register(self.registry, self.host, self.shared)
        if directory is None:
            directory_api.register(self.registry, self.directory)

    async def start(self, *, users: bool = True) -> None:
        if self._own_directory:
            await self.directory.load()
        await self.shared.load()
        if users and self._own_directory and not self.directory.users:
            await self.directory.ensure_admin("admin-password-1")
            await self.directory.add("users", {"username": "alice", "displayname": "Alice Agent"})
            await self.directory.add("users", {"username": "bob", "displayname": "Bob Agent"})
        self.host.startService()

    def stop(self) -> None:
        if self.host.running:
            self.host.stopService()

    def session(self, *, superuser: bool = False, supervisor: bool = False) -> Session:
        user = User(90 + superuser * 2 + supervisor, "someone", superuser=superuser, supervisor=supervisor)
        return self.sessions.create(user=user, state=SessionState.READY)

    def call(self, session: Session, method: str, *args: Any) -> Any:
        return self.registry.call(session, method, list(args))

    def plugin(self, name: str) -> Any:
        return self.host.get(name).instance

    def module(self, name: str) -> Any:
        return self.host.get(name).module
