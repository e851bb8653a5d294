"""``twistd ucs``: command-line options and the service twistd runs.

``twistd -n ucs [--config FILE] [--demo] [--listen [HOST:]PORT] [--store URL]
[--log-level LEVEL] [--log-format text|json]``. A config problem stops
start-up with one line on stderr (the :class:`~ucs.config.ConfigError`
message) and exit status 1, before anything is started.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.components import Componentized
from zope.interface import implementer

from ucs.config import DEFAULT_CONFIG_PATH, Config, ConfigError, LogConfig, load_config

SOURCE = "command line"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run UCS, the contact-center CTI server. Without --config it reads "
        f"{DEFAULT_CONFIG_PATH} if that exists, else uses the built-in defaults "
        "(see docs/configuration.md). With --demo it runs a simulated PBX inside "
        "and connects to it instead of Asterisk."
    )
    optFlags = [
        ["demo", None, "Run the demo: a simulated PBX with phones and callers inside UCS ([demo] enabled = true)."],
    ]
    optParameters = [
        ["config", "c", None,
         f"TOML config file [default: {DEFAULT_CONFIG_PATH} if it exists, else built-in defaults]."],
        ["listen", "l", None, "Web server address, PORT, HOST:PORT or [IPv6]:PORT (overrides [web] listen and port)."],
        ["store", None, None,
         "Store URL, sqlite:///PATH or postgresql://USER@HOST:PORT/DB (overrides [store] url)."],
        ["log-level", None, None, "debug, info, warn, error or critical (overrides [log] level)."],
        ["log-format", None, None, "text or json (overrides [log] format)."],
    ]

    config: Config

    def postOptions(self) -> None:
        try:
            self.config = build_config(self)
        except ConfigError as e:
            # One line on stderr, exit status 1, no traceback and no usage text.
            raise SystemExit(str(e)) from None


def _parse_listen(value: str) -> dict[str, Any]:
    accepted = "use PORT, HOST:PORT or [IPv6]:PORT"
    host: str | None = None
    port_text = value
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"{SOURCE}: --listen: {value!r} is not accepted; {accepted}", source=SOURCE)
        port_text = rest[1:]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
    if not port_text.isdigit() or (host is not None and not host):
        raise ConfigError(f"{SOURCE}: --listen: {value!r} is not accepted; {accepted}", source=SOURCE)
    web: dict[str, Any] = {"port": int(port_text)}
    if host is not None:
        web["listen"] = host
    return web


def build_config(options: usage.Options) -> Config:
    """Load the config file named by the options and apply the command-line overrides."""
    config = load_config(options["config"])
    changes: dict[str, dict[str, Any]] = {}
    if options["demo"]:
        changes["demo"] = {"enabled": True}
    if options["listen"] is not None:
        changes["web"] = _parse_listen(options["listen"])
    if options["store"] is not None:
        changes["store"] = {"url": options["store"]}
    log_changes = {}
    if options["log-level"] is not None:
        log_changes["level"] = options["log-level"]
    if options["log-format"] is not None:
        log_changes["format"] = options["log-format"]
    if log_changes:
        changes["log"] = log_changes
    return config.replace(**changes) if changes else config


def log_observer(config: LogConfig, twistd_options: Any) -> ILogObserver | None:
    """The observer for ``[log]``, writing where twistd would have (stdout or --logfile).

    ``None`` when twistd was told to log elsewhere (``--syslog``, ``--logger``):
    then twistd's own observer is used as is.
    """
    if twistd_options is None or twistd_options.get("syslog") or twistd_options.get("logger"):
        return None
    logfile = twistd_options.get("logfile")
    nodaemon = twistd_options.get("nodaemon")
    if logfile == "-" and not nodaemon:
        return None  # twistd itself refuses this, with its own message
    out: Any
    if logfile == "-" or (nodaemon and not logfile):
        out = sys.stdout
    else:
        from twisted.python.logfile import LogFile

        out = LogFile.fromFullPath(logfile or "twistd.log")
    observer = json_lines_observer(out) if config.format == "json" else textFileLogObserver(out)
    level = LogLevel.levelWithName(config.level)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=level)
    return FilteringLogObserver(observer, [predicate])  # type: ignore[arg-type,return-value]


def json_lines_observer(out: Any) -> ILogObserver:
    """One compact JSON object per line: ``time`` (ISO 8601, UTC), ``level``,
    ``namespace``, ``message``, and ``failure`` (the traceback) when there is one."""

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(event.get("log_time", 0), tz=UTC).isoformat(),
            "level": getattr(event.get("log_level"), "name", "info"),
            "namespace": event.get("log_namespace", ""),
            "message": formatEvent(event),
        }
        failure = event.get("log_failure")
        if failure is not None:
            record["failure"] = failure.getTraceback()
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        out.flush()

    return observe


class _TwistdRoot(MultiService):
    """Holds UCS's service under twistd and, once twistd attaches it to its
    application, sets the ``[log]`` observer there (twistd reads it when it
    begins logging, right after ``makeService``)."""

    def __init__(self, config: Config, twistd_options: Any) -> None:
        super().__init__()
        self._config = config
        self._twistd_options = twistd_options

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized) and parent.getComponent(ILogObserver, None) is None:
            observer = log_observer(self._config.log, self._twistd_options)
            if observer is not None:
                parent.setComponent(ILogObserver, observer)
        super().setServiceParent(parent)


def _exit_status_on_exit(status: int) -> None:
    """Make the process exit with ``status`` once twistd has cleaned up (it always exits 0)."""

    def exit_now() -> None:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(status)

    atexit.register(exit_now)


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from ucs.server import UCSServer

    config = getattr(options, "config", None) or build_config(options)
    fatal_seen: list[str] = []

    def on_fatal(message: str) -> None:
        if not fatal_seen:
            fatal_seen.append(message)
            _exit_status_on_exit(1)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined,misc]

    server = UCSServer(config, reactor, on_fatal=on_fatal)
    root = _TwistdRoot(config, getattr(options, "parent", None))
    server.service.setServiceParent(root)
    return root  # type: ignore[return-value]  # MultiService implements IService
