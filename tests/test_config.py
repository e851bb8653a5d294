"""The TOML config: defaults, the sample file and the docs in step with the schema, and error messages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ucs.config import (
    SECTIONS,
    Config,
    ConfigError,
    iter_options,
    load_config,
    parse_config,
    render_markdown,
    render_sample,
)


def test_defaults() -> None:
    c = Config()
    assert (c.ami.host, c.ami.port, c.ami.auth) == ("127.0.0.1", 5038, "md5")
    assert c.store.url == "sqlite:///var/ucs.db"
    assert c.plugins.directory == "plugins"
    assert (c.log.level, c.log.format) == ("info", "text")
    assert c.calls.country_code == "420"
    assert c.demo.enabled is False
    assert parse_config("", "empty.toml") == c


def test_sample_has_every_option_and_loads(repo_root: Path) -> None:
    path = repo_root / "etc" / "ucs.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    missing = [f"{s}.{k}" for s, k, _ in iter_options() if k not in raw.get(s, {})]
    assert not missing, f"etc/ucs.toml lacks {missing}; regenerate it: python -m ucs.config sample > etc/ucs.toml"
    config = load_config(str(path))
    assert config.source == str(path)
    # Every option is documented in a comment right above it.
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"etc/ucs.toml line {i + 1} ({line}) has no comment"


def test_sample_is_generated_from_the_schema(repo_root: Path) -> None:
    text = (repo_root / "etc" / "ucs.toml").read_text(encoding="utf-8")
    assert text == render_sample(), "regenerate: python -m ucs.config sample > etc/ucs.toml"


def test_docs_are_generated_from_the_schema(repo_root: Path) -> None:
    text = (repo_root / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert text == render_markdown(), "regenerate: python -m ucs.config markdown > docs/configuration.md"
    for section, key, _ in iter_options():
        assert f"| `{key}` |" in text and f"## [{section}]" in text


def test_every_option_documented() -> None:
    for section, cls in SECTIONS.items():
        assert cls.__doc__, section
    for section, key, field in iter_options():
        assert field.metadata["doc"].strip(), f"{section}.{key}"
        assert field.metadata["kind"].check(field.default) == field.default, f"{section}.{key} default"


def test_full_file() -> None:
    c = parse_config(
        """
        [ami]
        host = "pbx.example.com"
        port = 5039
        username = "crm"
        secret = "tajné"
        auth = "PLAIN"
        events = "system, call ,agent"
        filters = ["!Event: RTCP*"]
        reconnect_min_delay = 1
        reconnect_max_delay = 60
        ping_interval = 0
        action_timeout = 5.5

        [web]
        listen = "0.0.0.0"
        port = 8443
        allowed_origins = ["https://CRM.example.com", "http://localhost:3000"]

        [store]
        url = "postgresql://ucs:pw@db:5432/ucs"
        pool_size = 8

        [calls]
        country_code = "+44"
        trunks = ["SIP/carrier*", "PJSIP/trunk-*"]

        [demo]
        enabled = true
        call_rate = 10
        """,
        "full.toml",
    )
    assert c.ami.auth == "plain"
    assert c.ami.events == "system,call,agent"
    assert c.ami.filters == ("!Event: RTCP*",)
    assert c.ami.reconnect_min_delay == 1.0 and isinstance(c.ami.reconnect_min_delay, float)
    assert c.web.allowed_origins == ("https://crm.example.com", "http://localhost:3000")
    assert c.store.pool_size == 8
    assert c.calls.country_code == "44"
    assert c.calls.trunks == ("SIP/carrier*", "PJSIP/trunk-*")
    assert c.demo.enabled and c.demo.call_rate == 10.0


@pytest.mark.parametrize(
    "text, message",
    [
        ('[stor]\nurl = "x"', "bad.toml: [stor]: unknown section; sections are [ami], [web], [iserver], [store], "
                              "[plugins], [log], [calls], [auth], [agents], [supervisor], [lookup], [recording], [demo], "
                              "[cluster]"),
        ('url = "x"', "bad.toml: url: unknown key outside any section; sections are [ami], [web], [iserver], "
                      "[store], [plugins], [log], [calls], [auth], [agents], [supervisor], [lookup], [recording], [demo], "
                      "[cluster]"),
        ("store = 5", "bad.toml: store: 5 is an integer; use a [store] table"),
        ("[ami]\nhots = 'x'", "bad.toml: ami.hots: unknown key; [ami] accepts host, port, username, secret, auth, "
                              "events, filters, reconnect_min_delay, reconnect_max_delay, ping_interval, "
                              "action_timeout"),
        ("[ami]\nport = 'abc'", "bad.toml: ami.port: 'abc' is a string; use a port number 1-65535"),
        ("[ami]\nport = 70000", "bad.toml: ami.port: 70000 is out of range; use a port number 1-65535"),
        ("[ami]\nport = 0", "bad.toml: ami.port: 0 is out of range; use a port number 1-65535"),
        ("[ami]\nport = true", "bad.toml: ami.port: True is a boolean; use a port number 1-65535"),
        ("[web]\nport = -1", "bad.toml: web.port: -1 is out of range; use a port number 1-65535 (0: any free port)"),
        ("[ami]\nauth = 'sha1'", "bad.toml: ami.auth: 'sha1' is not accepted; use one of 'md5', 'plain'"),
        ("[ami]\nhost = ''", "bad.toml: ami.host: '' is empty; use a host name or IP address"),
        ("[ami]\nevents = 'calls'", "bad.toml: ami.events: 'calls' is not accepted; use 'on', 'off' or a "
                                    "comma-separated list of AMI event classes like 'system,call,agent'"),
        ("[ami]\nfilters = 'x'", "bad.toml: ami.filters: 'x' is a string; use a list of AMI Filter expressions"),
        ("[ami]\nping_interval = 'often'", "bad.toml: ami.ping_interval: 'often' is a string; use a number of "
                                           "seconds from 0 to 3600"),
        ("[ami]\naction_timeout = 0", "bad.toml: ami.action_timeout: 0 is out of range; use a number of seconds "
                                      "from 0.1 to 3600"),
        ("[ami]\nreconnect_min_delay = 10\nreconnect_max_delay = 5",
         "bad.toml: ami.reconnect_min_delay: 10.0 is more than ami.reconnect_max_delay (5.0); use a smaller or "
         "equal delay"),
        ("[store]\nurl = 'mysql://x'", "bad.toml: store.url: 'mysql://x' is not supported; use sqlite:///PATH or "
                                       "postgresql://USER@HOST:PORT/DB"),
        ("[store]\nurl = 'postgresql://u:secret@h:0/db'",
         "bad.toml: store.url: 'postgresql://u:***@h:0/db' has port 0; use a port 1-65535 (PostgreSQL's is 5432)"),
        ("[store]\npool_size = 0", "bad.toml: store.pool_size: 0 is out of range; use an integer 1-64"),
        ("[web]\nallowed_origins = ['crm.example.com']",
         "bad.toml: web.allowed_origins: 'crm.example.com' is not an origin; use '*' or origins like "
         "'https://crm.example.com'"),
        ("[web]\nallowed_origins = [5]", "bad.toml: web.allowed_origins: item 0 5 is an integer; use a list of "
                                         "origins like 'https://crm.example.com', or ['*']"),
        ("[web]\ntls_cert = 'cert.pem'", "bad.toml: web.tls_key: '' is empty but web.tls_cert is set; set both "
                                         "tls_cert and tls_key for TLS, or neither for plain HTTP"),
        ("[web]\ntls_cert = '/nonexistent/c.pem'\ntls_key = '/nonexistent/k.pem'",
         "bad.toml: web.tls_cert: '/nonexistent/c.pem' is not a readable file; use the path of a PEM file"),
        ("[iserver]\npath = 'iserver'", "bad.toml: iserver.path: 'iserver' is not a URL path; use a URL path "
                                        "starting with '/'"),
        ("[log]\nlevel = 'verbose'", "bad.toml: log.level: 'verbose' is not accepted; use one of 'debug', 'info', "
                                     "'warn', 'error', 'critical'"),
        ("[calls]\ncountry_code = 420", "bad.toml: calls.country_code: 420 is an integer; use a country calling "
                                        "code without '+', like \"420\" or \"1\""),
        ("[calls]\ncountry_code = '999'", "bad.toml: calls.country_code: '999' is not an assigned country calling "
                                          "code; use a country calling code without '+', like \"420\" or \"1\""),
        ("[calls]\ndial_prefix = '9a'", "bad.toml: calls.dial_prefix: '9a' is not digits; use digits (or \"\" for "
                                        "none)"),
        ("[web]\ntrusted_proxies = ['10.0.0.0/33']", "bad.toml: web.trusted_proxies: '10.0.0.0/33' is not an IP "
                                                 "address or network; use addresses like '10.0.0.5' or networks "
                                                 "like '10.0.0.0/24'"),
        ("[demo]\nenabled = 'yes'", "bad.toml: demo.enabled: 'yes' is a string; use true or false"),
        ("[demo]\ncall_rate = 1e9", "bad.toml: demo.call_rate: 1000000000.0 is out of range; use a number of calls "
                                    "per minute from 0 to 600"),
    ],
)
def test_errors_name_file_key_found_and_accepted(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "bad.toml")
    assert str(e.value) == message
    assert "\n" not in str(e.value)
    assert e.value.source == "bad.toml"


def test_error_key_attribute() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("[ami]\nport = 'x'", "f.toml")
    assert e.value.key == "ami.port"


def test_toml_syntax_error() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("[ami]\nport = = 5\n", "bad.toml")
    assert str(e.value).startswith("bad.toml: TOML syntax error: ")
    assert "line 2" in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read the config file: No such file or directory$"):
        load_config(str(path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[ami]\nsecret = "\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 text \(line 2\); save the file as UTF-8"):
        load_config(str(path))


def test_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None) == Config()
    assert load_config(None).source is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "ucs.toml").write_text("[web]\nport = 9000\n")
    config = load_config(None)
    assert config.web.port == 9000 and config.source == "etc/ucs.toml"


def test_replace_checks_like_a_file() -> None:
    c = Config().replace(web={"port": 9090}, demo={"enabled": True})
    assert c.web.port == 9090 and c.demo.enabled and c.ami == Config().ami
    with pytest.raises(ConfigError) as e:
        Config().replace(store={"url": "redis://x"})
    assert str(e.value) == (
        "command line: store.url: 'redis://x' is not supported; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ucs.config import main

    good = tmp_path / "good.toml"
    good.write_text("[log]\nlevel = 'debug'\n")
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[log]\nlevel = 'loud'\n")
    assert main(["check", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}: log.level: 'loud' is not accepted")
