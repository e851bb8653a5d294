"""The container (UCSServer) and the service tree twistd runs, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.application.service import IServiceCollection, Service
from twisted.internet import defer, reactor

from ucs.config import Config
from ucs.store.migrations import LATEST_VERSION
from ucs.server import UCSServer
from ucs.store import LATEST_VERSION, StoreError
from ucs.tap import Options, makeService


def sqlite_config(tmp_path: Path) -> Config:
    return Config().replace(store={"url": f"sqlite:///{tmp_path / 'ucs.db'}"}, web={"port": 0},
                            plugins={"directory": str(tmp_path / "plugins")})


class Recorder(Service):
    def __init__(self, name: str, events: list[str], server: UCSServer) -> None:
        self.setName(name)
        self.events = events
        self.server = server

    def startService(self) -> None:
        super().startService()
        # Started after the store: it can use it at once.
        self.events.append(f"start {self.name} store={self.server.get_store().schema_version}")

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self.events.append(f"stop {self.name}")
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(0, d.callback, None)  # type: ignore[attr-defined]
        return d


@pytest_twisted.ensureDeferred
async def test_store_opens_first_and_closes_last(tmp_path: Path) -> None:
    server = UCSServer(sqlite_config(tmp_path), reactor)
    events: list[str] = []
    svc = server.service
    assert server.service is svc  # built once
    Recorder("recorder", events, server).setServiceParent(svc)
    Recorder("other", events, server).setServiceParent(svc)
    with pytest.raises(StoreError, match="not open yet"):
        server.get_store()

    svc.startService()
    store = await server.when_store_open()
    assert server.get_store() is store
    await svc.whenStarted()
    assert events == [f"start recorder store={LATEST_VERSION}", f"start other store={LATEST_VERSION}"]
    await store.kv_set("t", "k", [1])

    await svc.stopService()
    assert events[2:] == ["stop other", "stop recorder"]
    with pytest.raises(StoreError, match="closed"):
        await store.kv_get("t", "k")


@pytest_twisted.ensureDeferred
async def test_stop_while_store_is_opening(tmp_path: Path) -> None:
    server = UCSServer(sqlite_config(tmp_path), reactor)
    events: list[str] = []
    Recorder("recorder", events, server).setServiceParent(server.service)
    server.service.startService()
    await server.service.stopService()  # before the store has opened
    assert events == []
    assert server.get_store_service().store is None


@pytest_twisted.ensureDeferred
async def test_store_failure_is_fatal(tmp_path: Path) -> None:
    messages: list[str] = []
    config = Config().replace(store={"url": "postgresql://ucs:pw@127.0.0.1:1/ucs"})
    server = UCSServer(config, reactor, on_fatal=messages.append)
    events: list[str] = []
    Recorder("recorder", events, server).setServiceParent(server.service)
    server.service.startService()
    with pytest.raises(StoreError):
        await server.when_store_open()
    await server.service.whenStarted()
    assert len(messages) == 1
    assert messages[0].startswith("cannot connect to store postgresql://ucs:***@127.0.0.1:1/ucs: ")
    assert events == []  # nothing else started
    await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_components_are_built_once_and_wired(tmp_path: Path, captures_dir: Path) -> None:
    server = UCSServer(sqlite_config(tmp_path), reactor)
    assert server.get_pbx() is server.get_pbx()
    assert server.get_call_tracker() is server.get_call_tracker()
    assert server.get_ami_client() is server.get_ami_client()
    from ucs.events import EVENT_CALL_HANGUP

    ended: list[str] = []
    server.get_bus().subscribe(EVENT_CALL_HANGUP, lambda call, args: ended.append(call.uniqueid))
    from ucs.ami.message import AMIParser

    link = server.get_pbx_link()
    for msg in AMIParser().feed((captures_dir / "queue_answered_caller_hangup.ami").read_bytes()):
        if "Event" in msg:
            link.eventReceived(msg)
    assert ended == ["1795391256.1"]
    # the store is not open: the CDR waits for it, then lands
    assert len(server.get_cdr_writer().pending) == 1
    server.service.startService()
    store = await server.when_store_open()
    await server.get_cdr_writer().flushed()
    cdr = await store.get_cdr("1795391256.1")
    assert cdr is not None and cdr["answered_by"] == "SIP/1001"
    await server.service.stopService()
    assert server.get_config() is server.config
    assert server.get_reactor() is reactor


def test_make_service_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no etc/ucs.toml here: built-in defaults
    options = Options()
    options.parseOptions(["--demo", "--listen", "[::1]:8443", "--store", "sqlite:///x.db"])
    assert options.config.demo.enabled
    assert (options.config.web.listen, options.config.web.port) == ("::1", 8443)
    root = makeService(options)
    ucs_service = IServiceCollection(root).getServiceNamed("ucs")
    assert IServiceCollection(ucs_service).getServiceNamed("store") is not None
    assert not root.running


def test_bad_options_exit_with_one_line(tmp_path: Path) -> None:
    options = Options()
    with pytest.raises(SystemExit) as e:
        options.parseOptions(["--config", str(tmp_path / "missing.toml")])
    assert str(e.value.code) == f"{tmp_path / 'missing.toml'}: cannot read the config file: No such file or directory"


@pytest.mark.parametrize(
    "listen, expected",
    [("8080", {"port": 8080}), ("0.0.0.0:80", {"listen": "0.0.0.0", "port": 80}),
     ("[::]:9000", {"listen": "::", "port": 9000})],
)
def test_listen_forms(listen: str, expected: dict[str, Any]) -> None:
    from ucs.tap import _parse_listen

    assert _parse_listen(listen) == expected
