"""UCS configuration: a TOML file read into one frozen class per section.

The schema below is the single source of truth: the loader checks files
against it, ``python -m ucs.config sample`` writes ``etc/ucs.toml`` from it and
``python -m ucs.config markdown`` writes ``docs/configuration.md``; tests check
that both files are in step with it.

Every problem with a config file raises :class:`ConfigError`, whose message
names the file, the key (as a dotted path), what was found and what is
accepted, for example::

    etc/ucs.toml: store.url: 'mysql://x' is not supported; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB

Relative paths in the file (SQLite database, TLS files, plugin directory) are
relative to the directory UCS is started in.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from ucs.store.url import StoreURLError, parse_store_url

DEFAULT_CONFIG_PATH = os.path.join("etc", "ucs.toml")

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, with a message fit to show the operator as is.

    ``source`` is the file (or ``"command line"``), ``key`` the dotted key
    (``"store.url"``) or ``None`` for file-level problems.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.key = key

    def __str__(self) -> str:
        return self.message


class _Invalid(Exception):
    """Raised by a kind's check; the loader adds the file and the key."""


# --- kinds of values ---------------------------------------------------------


@attrs.frozen
class Kind:
    """What one option accepts: a check (which may normalise) and its description."""

    accepted: str
    check: Callable[[Any], Any]
    toml_type: str


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _wrong_type(value: object, accepted: str) -> _Invalid:
    return _Invalid(f"{value!r} is {_type_name(value)}; use {accepted}")


def string(accepted: str = "a string", *, nonempty: bool = False) -> Kind:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if nonempty and not v.strip():
            raise _Invalid(f"{v!r} is empty; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def boolean() -> Kind:
    accepted = "true or false"

    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise _wrong_type(v, accepted)
        return v

    return Kind(accepted, check, "boolean")


def integer(lo: int, hi: int, accepted: str | None = None) -> Kind:
    accepted = accepted or f"an integer {lo}-{hi}"

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _wrong_type(v, accepted)
        if not lo <= v <= hi:
            raise _Invalid(f"{v!r} is out of range; use {accepted}")
        return v

    return Kind(accepted, check, "integer")


def port(*, allow_zero: bool = False) -> Kind:
    lo = 0 if allow_zero else 1
    accepted = "a port number 1-65535" + (" (0: any free port)" if allow_zero else "")
    return integer(lo, 65535, accepted)


def number(lo: float, hi: float, unit: str) -> Kind:
    accepted = f"a number of {unit} from {lo:g} to {hi:g}"

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _wrong_type(v, accepted)
        if not (math.isfinite(v) and lo <= v <= hi):
            raise _Invalid(f"{v!r} is out of range; use {accepted}")
        return float(v)

    return Kind(accepted, check, "number")


def choice(*options: str) -> Kind:
    accepted = "one of " + ", ".join(repr(o) for o in options)

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v.lower() not in options:
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return v.lower()

    return Kind(accepted, check, "string")


def string_list(accepted: str = "a list of strings", item: Callable[[str], str] | None = None) -> Kind:
    def check(v: Any) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)):
            raise _wrong_type(v, accepted)
        out = []
        for i, x in enumerate(v):
            if not isinstance(x, str):
                raise _Invalid(f"item {i} {x!r} is {_type_name(x)}; use {accepted}")
            out.append(item(x) if item else x)
        return tuple(out)

    return Kind(accepted, check, "list of strings")


def _store_url() -> Kind:
    accepted = "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"

    def check(v: Any) -> str:
        try:
            parse_store_url(v)
        except StoreURLError as e:
            raise _Invalid(str(e)) from None
        return v

    return Kind(accepted, check, "string")


def _url_path() -> Kind:
    accepted = "a URL path starting with '/'"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if not v.startswith("/") or any(c.isspace() for c in v):
            raise _Invalid(f"{v!r} is not a URL path; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def _network(v: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(v.strip(), strict=False))
    except ValueError:
        raise _Invalid(f"{v!r} is not an IP address or network; use addresses like '10.0.0.5' "
                       "or networks like '10.0.0.0/24'") from None


def _origin(v: str) -> str:
    if v == "*":
        return v
    scheme, sep, host = v.partition("://")
    if not sep or scheme not in ("http", "https") or not host or "/" in host:
        raise _Invalid(f"{v!r} is not an origin; use '*' or origins like 'https://crm.example.com'")
    return v.lower()


def string_table(accepted: str = "a table of names to strings") -> Kind:
    def check(v: Any) -> dict[str, str]:
        if not isinstance(v, dict):
            raise _wrong_type(v, accepted)
        for k, x in v.items():
            if not isinstance(x, str):
                raise _Invalid(f"{k} = {x!r} is {_type_name(x)}; use {accepted}")
        return dict(v)

    return Kind(accepted, check, "table")


def table_list(accepted: str = "a list of tables") -> Kind:
    def check(v: Any) -> tuple[dict[str, Any], ...]:
        if not isinstance(v, (list, tuple)):
            raise _wrong_type(v, accepted)
        for i, x in enumerate(v):
            if not isinstance(x, dict):
                raise _Invalid(f"item {i} {x!r} is {_type_name(x)}; use {accepted}")
        return tuple(dict(x) for x in v)

    return Kind(accepted, check, "array of tables")


def _country_code() -> Kind:
    accepted = "a country calling code without '+', like \"420\" or \"1\""

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        code = v.lstrip("+")
        if not code.isdigit() or not 1 <= len(code) <= 3:
            raise _Invalid(f"{v!r} is not a country calling code; use {accepted}")
        import phonenumbers  # imported here: only when a config file is checked

        if int(code) not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            raise _Invalid(f"{v!r} is not an assigned country calling code; use {accepted}")
        return code

    return Kind(accepted, check, "string")


def _dial_prefix() -> Kind:
    accepted = "digits (or \"\" for none)"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v and not v.isdigit():
            raise _Invalid(f"{v!r} is not digits; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def _ami_events() -> Kind:
    classes = ("system", "call", "log", "verbose", "command", "agent", "user", "config",
               "dtmf", "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc",
               "test", "security", "message", "all")
    accepted = "'on', 'off' or a comma-separated list of AMI event classes like 'system,call,agent'"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        value = v.strip().lower()
        if value in ("on", "off"):
            return value
        parts = [p.strip() for p in value.split(",")]
        bad = [p for p in parts if p not in classes]
        if bad or not parts:
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return ",".join(parts)

    return Kind(accepted, check, "string")


def option(default: T, kind: Kind, doc: str) -> T:
    """Declare one option of a section: its default, what it accepts and its documentation."""
    return attrs.field(default=default, metadata={"kind": kind, "doc": doc})  # type: ignore[no-any-return]


# --- the sections ------------------------------------------------------------


@attrs.frozen
class AMIConfig:
    """How UCS connects to Asterisk's Manager Interface (manager.conf)."""

    host: str = option("127.0.0.1", string("a host name or IP address", nonempty=True),
                       "Asterisk host to connect to.")
    port: int = option(5038, port(), "AMI TCP port (manager.conf `port`).")
    username: str = option("ucs", string("a manager.conf user name", nonempty=True),
                           "AMI user (a `[section]` of manager.conf).")
    secret: str = option("", string(), "That user's `secret`.")
    auth: str = option("md5", choice("md5", "plain"),
                       "`md5`: challenge-response login, the secret never crosses the wire; "
                       "`plain`: the secret is sent as is.")
    events: str = option("on", _ami_events(),
                         "The `Events:` of the Login action: `on` (every class), `off`, or the event "
                         "classes UCS needs, e.g. `system,call,agent` (much less dialplan noise).")
    filters: tuple[str, ...] = option((), string_list("a list of AMI Filter expressions"),
                                      "AMI `Filter` expressions sent after login, e.g. "
                                      "`[\"!Event: RTCP*\", \"!Event: VarSet\"]`; Asterisk then sends only "
                                      "the events they let through.")
    reconnect_min_delay: float = option(0.5, number(0.01, 3600, "seconds"),
                                        "First delay before reconnecting after the link drops.")
    reconnect_max_delay: float = option(30.0, number(0.01, 3600, "seconds"),
                                        "The reconnect delay doubles up to this.")
    ping_interval: float = option(20.0, number(0, 3600, "seconds"),
                                  "Send a `Ping` action this often to detect a dead link (0: never).")
    action_timeout: float = option(10.0, number(0.1, 3600, "seconds"),
                                   "An action with no response after this long fails with a timeout.")


@attrs.frozen
class WebConfig:
    """The HTTP/WebSocket server the agent bar (operator.js) and the demo CRM talk to."""

    listen: str = option("127.0.0.1", string("an IP address to listen on", nonempty=True),
                         "Address to listen on: `127.0.0.1` for this machine only, `0.0.0.0` or `::` for all.")
    port: int = option(8080, port(allow_zero=True), "TCP port to listen on.")
    backlog: int = option(1024, integer(1, 65535),
                          "Listen backlog of the web port: connections the kernel queues until UCS "
                          "accepts them. A reconnect storm (thousands of agent bars at once after a "
                          "network blip) overflows a short queue and each refused bar waits 1, 3, 7 … s "
                          "to retry. Linux caps it at `net.core.somaxconn` "
                          "(`/proc/sys/net/core/somaxconn`, 4096 by default since Linux 5.4); UCS logs "
                          "a warning at start if this is larger, and the kernel uses the smaller value.")
    tls_cert: str = option("", string("a path to a PEM file, or \"\""),
                           "PEM certificate (chain) for HTTPS/WSS; empty: plain HTTP. Set with `tls_key`.")
    tls_key: str = option("", string("a path to a PEM file, or \"\""),
                          "PEM private key for `tls_cert`.")
    allowed_origins: tuple[str, ...] = option(
        (), string_list("a list of origins like 'https://crm.example.com', or ['*']", _origin),
        "Web origins (CRM pages) allowed to open the agent-bar WebSocket. Empty: only pages "
        "served by UCS itself; `[\"*\"]`: any origin.")
    trusted_proxies: tuple[str, ...] = option(
        (), string_list("a list of IP addresses or networks like '10.0.0.5' or '10.0.0.0/24'", _network),
        "Reverse proxies (nginx, HAProxy) in front of UCS whose `X-Forwarded-For` is believed: a "
        "WebSocket from one of them counts as coming from the right-most address of that header "
        "that is not itself a trusted proxy (login throttling, `identifyIP`). Empty: the header "
        "is ignored and the socket's address counts.")
    ws_path: str = option("/ws", _url_path(), "URL path of the agent bar's WebSocket.")
    ping_interval: float = option(20.0, number(1, 3600, "seconds"),
                                  "WebSocket ping to every client this often, spread evenly over "
                                  "the interval by one timer for all clients.")
    ping_timeout: float = option(10.0, number(1, 3600, "seconds"),
                                 "A client from which nothing (no pong, no request) arrived within this "
                                 "after a ping is dropped.")
    max_request_size: int = option(65536, integer(256, 16 << 20),
                                   "Larger requests get an error reply (bytes).")
    max_frame_size: int = option(1 << 20, integer(1024, 64 << 20),
                                 "Larger frames close the connection (bytes).")
    max_client_buffer: int = option(1 << 20, integer(4096, 256 << 20),
                                    "Bytes waiting for a slow client before it is dropped.")
    max_pending: int = option(32, integer(1, 10000), "Requests one client may have in progress at once.")
    max_connections: int = option(0, integer(0, 1_000_000), "WebSocket connections at most (0: no limit).")
    resume_window: float = option(120.0, number(0, 86400, "seconds"),
                                  "A logged-in session survives a lost connection this long (the bar "
                                  "resumes it on reconnect).")
    request_timeout: float = option(10.0, number(0.1, 600, "seconds"),
                                    "A client must send its whole HTTP request (headers and body; the "
                                    "WebSocket upgrade too) within this long of connecting or of its "
                                    "previous response, else it is dropped (slowloris clients); an idle "
                                    "keep-alive connection is closed after it too. An open WebSocket is "
                                    "not affected: the ping (`ping_interval`) watches it.")
    open_handshake_timeout: float = option(10.0, number(0.1, 600, "seconds"),
                                           "A WebSocket whose handshake autobahn has not finished this "
                                           "long after the HTTP upgrade request arrived is closed.")
    coalesce_delay: float = option(0.25, number(0, 60, "seconds"),
                                   "Changes that concern many agents (waiting callers) are sent at most "
                                   "this often.")
    waiting_rate: int = option(250, integer(1, 1_000_000),
                               "Waiting-caller messages a second, at most, to the agents of one set of "
                               "queues: a group of N agents gets a new count at most every "
                               "max(`coalesce_delay`, N / `waiting_rate`) seconds, so a busy queue of 500 "
                               "agents sends a count every 2 s, not 500 messages four times a second.")


@attrs.frozen
class IServerConfig:
    """The Interaction Processor service (JSON over WebSocket, seed 003)."""

    enabled: bool = option(True, boolean(), "Serve the Interaction Processor protocol.")
    path: str = option("/iserver", _url_path(), "URL path of its WebSocket on the web server.")
    instance_domain: str = option("", string("a domain name, or \"\""),
                                  "The `instance-domain` of the service information sent to clients; "
                                  "empty: the host name the client connected to.")


@attrs.frozen
class StoreConfig:
    """Where UCS keeps CDRs, agent state and statistics."""

    url: str = option("sqlite:///var/ucs.db", _store_url(),
                      "`sqlite:///var/ucs.db` (relative path), `sqlite:////abs/path.db`, or "
                      "`postgresql://USER[:PASSWORD]@HOST:PORT/DB` (several UCS nodes; libpq "
                      "parameters may follow, e.g. `?sslmode=require`).")
    pool_size: int = option(4, integer(1, 64), "PostgreSQL only: connections (and threads) in the pool. "
                            "SQLite always uses one thread.")


@attrs.frozen
class PluginsConfig:
    """Customer plugins (Python files) loaded at start."""

    directory: str = option("plugins", string("a directory path"),
                            "Directory scanned for plugin files at start (relative to where UCS starts).")
    hook_budget: float = option(0.05, number(0.001, 60, "seconds"),
                                "A plugin hook that runs longer than this on the reactor thread is logged "
                                "with its plugin, hook and time.")
    classes: dict[str, str] = option({}, string_table("a table of plugin file name to class name"),
                                     "For plugin files without `UCS_PLUGIN`: which class to create, "
                                     "e.g. `{ transform = \"MetadataTransformer\" }`.")
    packages: tuple[str, ...] = option(("twisted.plugins",), string_list("a list of package names"),
                                       "Packages searched for installed `IUCSPlugin` providers "
                                       "(twisted.plugin discovery).")


@attrs.frozen
class LogConfig:
    """Logging (to stdout with `twistd -n`, else to twistd's --logfile)."""

    level: str = option("info", choice("debug", "info", "warn", "error", "critical"),
                        "Least severe level logged.")
    format: str = option("text", choice("text", "json"),
                         "`text`: one readable line per event; `json`: one JSON object per line.")


@attrs.frozen
class CallsConfig:
    """How calls are read: numbers and which devices are trunks."""

    country_code: str = option("420", _country_code(),
                               "Country calling code of the PBX, for E.164 normalisation of national numbers.")
    dial_prefix: str = option("", _dial_prefix(),
                              "Digits agents dial to get an outside line (e.g. `0`), stripped before "
                              "a number is normalised.")
    trunks: tuple[str, ...] = option(
        (), string_list("a list of device patterns like 'SIP/carrier*'"),
        "Device patterns (shell-style: `*`, `?`, `[...]`) that are trunks, e.g. "
        "`[\"SIP/carrier*\", \"PJSIP/trunk-*\"]`; every other device is a line. Empty (the default): "
        "a device whose name after the technology is all digits (`SIP/1001`) is a line, any "
        "other (`SIP/carrier`) a trunk.")
    lines: tuple[str, ...] = option(
        (), string_list("a list of device patterns like 'PJSIP/alice*'"),
        "Device patterns that are always lines (agents' phones), checked before `trunks`.")


def _timezone() -> Kind:
    accepted = "an IANA time zone name such as 'Europe/Prague' or 'UTC'"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise _Invalid(f"{v!r} is not a known time zone; use {accepted}") from None
        return v

    return Kind(accepted, check, "string")


@attrs.frozen
class LookupConfig:
    """Caller lookup: names for incoming numbers from a static table or an HTTP JSON service."""

    directions: tuple[str, ...] = option(("INCOMING",), string_list("a list of INCOMING, OUTGOING, INTERNAL"),
                                         "Which calls are looked up.")
    normalized: bool = option(True, boolean(), "Look up the E.164 number (`+420…`) rather than as dialled.")
    sources: tuple[dict[str, Any], ...] = option(
        (), table_list("a list of tables, see docs/plugins.md (Caller lookup)"),
        "Lookup sources asked in order, e.g. `[{ id = 1, type = \"static\", table = { \"+420777123456\" = "
        "\"ACME\" } }, { id = 2, type = \"http\", url = \"https://crm/lookup?number={number}\" }]`.")


@attrs.frozen
class AuthConfig:
    """Logging in: the first administrator, SSO tokens (seed 002) and brute-force throttling."""

    admin_password: str = option("", string(),
                                 "Password of the `admin` superuser created on first start; empty: a random "
                                 "one is generated and printed once in the log.")
    sso_secret: str = option("", string(),
                             "Pre-shared secret of SSO tokens (`base64(sha1(secret + username + timestamp) "
                             "+ username + timestamp)`, the timestamp in plain decimal seconds without a "
                             "leading zero); empty: SSO login is refused (the demo uses `demo-sso-secret`).")
    sso_window: float = option(120.0, number(1, 86400, "seconds"),
                               "An SSO token is accepted once, and only while its timestamp is at most "
                               "this far from UCS's clock.")
    max_failures: int = option(5, integer(1, 1000),
                               "Failed logins (wrong password or SSO token) of one user name from one address "
                               "before that user must wait to log in from that address; other addresses and "
                               "other users of the address are not affected.")
    backoff: float = option(10.0, number(0.1, 86400, "seconds"),
                            "The first wait after `max_failures`; each further failure doubles it, up to "
                            "`lockout`.")
    lockout: float = option(300.0, number(1, 86400, "seconds"),
                            "The longest wait; failures are forgotten this long after the last one's wait "
                            "ended, and `address_max_failures` counts over this period.")
    address_max_failures: int = option(100, integer(1, 1_000_000),
                                       "Failed logins from one address, whatever the user names, within "
                                       "`lockout` seconds before that address must wait. Keep it well above "
                                       "`max_failures`: a contact center's agents may all come from one NAT "
                                       "address.")


@attrs.frozen
class AgentsConfig:
    """Agents: after-call work, the first status after login, when the statistics day ends."""

    acw_seconds: float = option(15.0, number(0, 3600, "seconds"),
                                "After-call work after a queue call, before the agent is back to the "
                                "status before the call (0: no ACW). The agent's queues are paused "
                                "(reason ACW) as soon as they answer a queue call, their status still "
                                "READY, so no next caller rings them between the call and ACW.")
    initial_status: str = option("ready", choice("ready", "aux", "offline"),
                                 "Status of an agent right after pairing a phone.")
    timezone: str = option("UTC", _timezone(),
                           "Time zone whose midnight resets the daily statistics.")
    hook_timeout: float = option(5.0, number(0.01, 600, "seconds"),
                                 "A plugin's status-change hook may take this long (it runs in a thread); "
                                 "after that the requested change goes ahead and the hook is logged.")
    confirm_timeout: float = option(5.0, number(0.1, 600, "seconds"),
                                    "How long a status change waits for Asterisk's queue-member event "
                                    "before it fails as not confirmed.")


@attrs.frozen
class DemoConfig:
    """The demo: a simulated PBX inside UCS, with phones and callers (also `twistd ucs --demo`)."""

    enabled: bool = option(False, boolean(),
                           "Run the simulated PBX inside UCS and point `[ami]` at it (ignores `[ami]`).")
    call_rate: float = option(2.0, number(0, 600, "calls per minute"),
                              "Simulated customer calls per minute (0: none, calls only when asked).")
    port: int = option(0, port(allow_zero=True),
                       "TCP port the simulated PBX's AMI listens on (on 127.0.0.1; 0: any free port).")
    phones: int = option(4, integer(1, 1000), "Simulated agent phones (SIP/1001, SIP/1002, ...).")


@attrs.frozen
class Config:
    """The whole configuration; ``source`` is the file it came from (``None``: built-in defaults)."""

    ami: AMIConfig = attrs.field(factory=AMIConfig)
    web: WebConfig = attrs.field(factory=WebConfig)
    iserver: IServerConfig = attrs.field(factory=IServerConfig)
    store: StoreConfig = attrs.field(factory=StoreConfig)
    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)
    log: LogConfig = attrs.field(factory=LogConfig)
    calls: CallsConfig = attrs.field(factory=CallsConfig)
    demo: DemoConfig = attrs.field(factory=DemoConfig)
    auth: AuthConfig = attrs.field(factory=AuthConfig)
    lookup: LookupConfig = attrs.field(factory=LookupConfig)
    agents: AgentsConfig = attrs.field(factory=AgentsConfig)
    source: str | None = attrs.field(default=None, eq=False)

    def replace(self, **changes: Mapping[str, Any]) -> Config:
        """A copy with some options changed, checked like a file would be.

        ``config.replace(web={"port": 8443}, demo={"enabled": True})``; raises
        :class:`ConfigError` naming ``"command line"`` as the source.
        """
        sections = {}
        for section, values in changes.items():
            cls = SECTIONS[section]
            current = getattr(self, section)
            checked = _check_section("command line", section, cls, dict(values))
            sections[section] = attrs.evolve(current, **checked)
        new = attrs.evolve(self, **sections)
        _check_whole("command line", new)
        return new


#: Section name -> its class, in the order of the sample file.
SECTIONS: dict[str, type] = {
    "ami": AMIConfig, "web": WebConfig, "iserver": IServerConfig, "store": StoreConfig,
    "plugins": PluginsConfig, "log": LogConfig, "calls": CallsConfig, "auth": AuthConfig,
    "agents": AgentsConfig, "lookup": LookupConfig, "demo": DemoConfig,
}


def iter_options() -> Iterator[tuple[str, str, attrs.Attribute[Any]]]:
    """Every option the code knows: (section, key, attrs field)."""
    for section, cls in SECTIONS.items():
        for f in attrs.fields(cls):
            yield section, f.name, f


# --- loading -------------------------------------------------------------------


def _check_section(source: str, section: str, cls: type, table: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name: f for f in attrs.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None:
            raise ConfigError(
                f"{source}: {section}.{key}: unknown key; [{section}] accepts {', '.join(fields)}",
                source=source, key=f"{section}.{key}",
            )
        try:
            out[key] = f.metadata["kind"].check(value)
        except _Invalid as e:
            raise ConfigError(f"{source}: {section}.{key}: {e}", source=source, key=f"{section}.{key}") from None
    return out


def _check_whole(source: str, config: Config) -> None:
    """Checks that involve more than one option."""
    ami = config.ami
    if ami.reconnect_min_delay > ami.reconnect_max_delay:
        raise ConfigError(
            f"{source}: ami.reconnect_min_delay: {ami.reconnect_min_delay!r} is more than "
            f"ami.reconnect_max_delay ({ami.reconnect_max_delay!r}); use a smaller or equal delay",
            source=source, key="ami.reconnect_min_delay",
        )
    web = config.web
    if bool(web.tls_cert) != bool(web.tls_key):
        key = "web.tls_key" if web.tls_cert else "web.tls_cert"
        raise ConfigError(
            f"{source}: {key}: '' is empty but {'web.tls_cert' if web.tls_cert else 'web.tls_key'} "
            "is set; set both tls_cert and tls_key for TLS, or neither for plain HTTP",
            source=source, key=key,
        )
    for key, path in (("web.tls_cert", web.tls_cert), ("web.tls_key", web.tls_key)):
        if path and not os.path.isfile(path):
            raise ConfigError(
                f"{source}: {key}: {path!r} is not a readable file; use the path of a PEM file",
                source=source, key=key,
            )


def parse_config(text: str, source: str = "<string>") -> Config:
    """Read a config from TOML text; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: TOML syntax error: {e}", source=source) from None
    sections: dict[str, Any] = {}
    for section, table in data.items():
        cls = SECTIONS.get(section)
        if cls is None:
            if isinstance(table, dict):
                what = f"[{section}]: unknown section"
            else:
                what = f"{section}: unknown key outside any section"
            raise ConfigError(
                f"{source}: {what}; sections are {', '.join('[' + s + ']' for s in SECTIONS)}",
                source=source, key=section,
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{source}: {section}: {table!r} is {_type_name(table)}; use a [{section}] table",
                source=source, key=section,
            )
        sections[section] = cls(**_check_section(source, section, cls, table))
    config = Config(**sections, source=source)
    _check_whole(source, config)
    return config


def load_config(path: str | None = None) -> Config:
    """Load the config file at ``path``.

    ``None``: ``etc/ucs.toml`` if it exists (relative to the current
    directory), else the built-in defaults.
    """
    if path is None:
        if not os.path.exists(DEFAULT_CONFIG_PATH):
            return Config()
        path = DEFAULT_CONFIG_PATH
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror}", source=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line}); save the file as UTF-8", source=path) from None
    return parse_config(text, path)


# --- generated documentation ----------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _wrap(text: str, prefix: str, width: int = 88) -> list[str]:
    words, lines, line = text.split(), [], prefix
    for w in words:
        if len(line) + len(w) + 1 > width and line.strip() != prefix.strip():
            lines.append(line.rstrip())
            line = prefix
        line += w + " "
    lines.append(line.rstrip())
    return lines


def render_sample() -> str:
    """The sample ``etc/ucs.toml``: every option, its documentation and its default."""
    out = [
        "# UCS configuration. Every option is listed with its default value.",
        "# Generated by `python -m ucs.config sample > etc/ucs.toml`; see docs/configuration.md.",
        "# `twistd -n ucs` reads etc/ucs.toml when it exists; `twistd -n ucs --config FILE` another file.",
        "# Relative paths are relative to the directory UCS is started in.",
    ]
    for section, cls in SECTIONS.items():
        out.append("")
        out.extend(_wrap(cls.__doc__ or "", "# "))
        out.append(f"[{section}]")
        for f in attrs.fields(cls):
            kind: Kind = f.metadata["kind"]
            out.extend(_wrap(f.metadata["doc"], "# "))
            if kind.accepted != "a string":
                out.extend(_wrap(f"Accepts {kind.accepted}.", "# "))
            out.append(f"{f.name} = {_toml_value(f.default)}")
    return "\n".join(out) + "\n"


def render_markdown() -> str:
    """``docs/configuration.md``, from the same schema."""
    out = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m ucs.config markdown > docs/configuration.md`; do not edit. -->",
        "",
        "UCS reads one TOML file: `twistd -n ucs --config FILE`, or `etc/ucs.toml` when it exists,",
        "or else the built-in defaults below. `etc/ucs.toml` in the repository lists every option",
        "with its default. Relative paths are relative to the directory UCS is started in.",
        "",
        "A mistake in the file (unknown section or key, wrong type, bad value) stops start-up",
        "with one line naming the file, the key, what was found and what is accepted, e.g.",
        "",
        "```",
        "etc/ucs.toml: store.url: 'mysql://x' is not supported; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        "```",
        "",
        "Command-line options of `twistd ucs` (see `twistd ucs --help`) override the file:",
        "`--demo` sets `demo.enabled`, `--listen` sets `web.listen`/`web.port`, `--store` sets",
        "`store.url`, `--log-level` sets `log.level`.",
    ]
    for section, cls in SECTIONS.items():
        out += ["", f"## [{section}]", "", cls.__doc__ or "", "", "| key | default | accepts | meaning |",
                "| --- | --- | --- | --- |"]
        for f in attrs.fields(cls):
            kind: Kind = f.metadata["kind"]
            doc = f.metadata["doc"].replace("|", "\\|")
            default = _toml_value(f.default).replace("|", "\\|")
            out.append(f"| `{f.name}` | `{default}` | {kind.accepted.replace('|', '/')} | {doc} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m ucs.config sample|markdown|check FILE``."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["sample"]:
        sys.stdout.write(render_sample())
        return 0
    if args == ["markdown"]:
        sys.stdout.write(render_markdown())
        return 0
    if len(args) == 2 and args[0] == "check":
        try:
            load_config(args[1])
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{args[1]}: OK")
        return 0
    print("usage: python -m ucs.config sample | markdown | check FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
