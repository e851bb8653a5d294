"""The whole :class:`Config`, assembled from its sections, and reading it from TOML.

Kept apart from the sections: this is where a file's tables are matched to
the section classes (:data:`SECTIONS`), each value is checked by its kind
and every problem becomes a :class:`~ucs.config.kinds.ConfigError` naming
the file and the key, including the checks that involve more than one option.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ucs.config.callcenter import AgentsConfig, AuthConfig, CallsConfig, LookupConfig, RecordingConfig, SupervisorConfig
from ucs.config.cluster import ClusterConfig, check_cluster
from ucs.config.kinds import ConfigError, _Invalid, _type_name
from ucs.config.service import (
    AMIConfig,
    DemoConfig,
    IServerConfig,
    LogConfig,
    PluginsConfig,
    StoreConfig,
    WebConfig,
)

DEFAULT_CONFIG_PATH = os.path.join("etc", "ucs.toml")


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
    supervisor: SupervisorConfig = attrs.field(factory=SupervisorConfig)
    recording: RecordingConfig = attrs.field(factory=RecordingConfig)
    cluster: ClusterConfig = attrs.field(factory=ClusterConfig)
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
    "agents": AgentsConfig, "supervisor": SupervisorConfig, "lookup": LookupConfig, "recording": RecordingConfig,
    "demo": DemoConfig, "cluster": ClusterConfig,
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
    check_cluster(source, config.cluster, config.store.url, config.iserver.instance_domain, config.demo.enabled)


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
