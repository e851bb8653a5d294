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

The parts, each in its module (this package only gathers their names, so
callers keep importing from ``ucs.config``):

- :mod:`ucs.config.kinds`: :class:`ConfigError`, the kinds of values
  (:func:`string`, :func:`integer`, ...) with their messages, :func:`option`;
- :mod:`ucs.config.service`: the sections about the process and its links
  (``[ami]``, ``[web]``, ``[iserver]``, ``[store]``, ``[plugins]``, ``[log]``,
  ``[demo]``);
- :mod:`ucs.config.cluster`: ``[cluster]`` (several nodes, issue 20);
- :mod:`ucs.config.callcenter`: the sections about the contact center
  (``[calls]``, ``[lookup]``, ``[auth]``, ``[agents]``);
- :mod:`ucs.config.load`: :class:`Config` assembling the sections,
  :data:`SECTIONS`, :func:`parse_config` and :func:`load_config`;
- :mod:`ucs.config.render`: the sample file, the Markdown reference and
  :func:`main` (``python -m ucs.config``).
"""

from __future__ import annotations

from ucs.config.cluster import ClusterConfig
from ucs.config.callcenter import AgentsConfig, AuthConfig, CallsConfig, LookupConfig, RecordingConfig
from ucs.config.kinds import (
    ConfigError,
    Kind,
    boolean,
    choice,
    integer,
    number,
    option,
    port,
    string,
    string_list,
    string_table,
    table_list,
)
from ucs.config.load import DEFAULT_CONFIG_PATH, SECTIONS, Config, iter_options, load_config, parse_config
from ucs.config.render import main, render_markdown, render_sample
from ucs.config.service import (
    AMIConfig,
    DemoConfig,
    IServerConfig,
    LogConfig,
    PluginsConfig,
    StoreConfig,
    WebConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SECTIONS",
    "AMIConfig",
    "AgentsConfig",
    "AuthConfig",
    "CallsConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DemoConfig",
    "IServerConfig",
    "Kind",
    "LogConfig",
    "LookupConfig",
    "PluginsConfig",
    "RecordingConfig",
    "StoreConfig",
    "WebConfig",
    "boolean",
    "choice",
    "integer",
    "iter_options",
    "load_config",
    "main",
    "number",
    "option",
    "parse_config",
    "port",
    "render_markdown",
    "render_sample",
    "string",
    "string_list",
    "string_table",
    "table_list",
]
