"""``twistd ucs`` as operators run it: a real twistd process (the venv's), in a temporary directory."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

import ucs

ROOT = Path(__file__).resolve().parents[1]
TWISTD = Path(sys.executable).with_name("twistd")
TIMEOUT = 60.0
# twistd re-raises the signal that stopped it once it has shut down cleanly.
CLEAN_EXIT = (0, -signal.SIGTERM)


def env() -> dict[str, str]:
    e = dict(os.environ)
    # The repository first, so its twisted/plugins/ is found even without `pip install -e`.
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    return e


def twistd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert TWISTD.exists(), f"{TWISTD} not found: install the project in the venv (pip install -e '.[test]')"
    return subprocess.run([str(TWISTD), *args], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


class Running:
    """A ``twistd -n ucs`` process whose output is collected line by line."""

    def __init__(self, args: list[str], cwd: Path, *, options: Sequence[str] = (),
                 wrap: Callable[[list[str]], list[str]] = list) -> None:
        """``twistd -n [options...] ucs [args...]``, its command line passed through ``wrap``
        (a cluster node: ``ip netns exec NS ...``)."""
        self.proc = subprocess.Popen(
            wrap([str(TWISTD), "-n", "--pidfile=", *options, "ucs", *args]), cwd=cwd, env=env(), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str) -> str:
        """The first output line containing ``text``; fails after TIMEOUT or if the process exits first."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"no line with {text!r} in twistd's output:\n" + "\n".join(self.lines))
                self._cond.wait(min(remaining, 0.5))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(TIMEOUT)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(TIMEOUT)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "ucs.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "data" / "ucs.db"}"\n\n[web]\nport = 0\n{extra}', encoding="utf-8"
    )
    return path


def test_plugin_is_discovered() -> None:
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
    assert "ucs" in makers
    assert makers["ucs"].module == "ucs.tap"


def test_help_lists_every_option(tmp_path: Path) -> None:
    result = twistd("ucs", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--config=", "--demo", "--listen=", "--store=", "--log-level=", "--log-format="):
        assert option in result.stdout
    listing = twistd("--help", cwd=tmp_path)
    assert "ucs" in listing.stdout and "UCS contact-center CTI server" in listing.stdout


@pytest.mark.parametrize(
    "content, args, message",
    [
        ('[store]\nurl = "mysql://x"\n', [],
         "{cfg}: store.url: 'mysql://x' is not supported; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"),
        ("[ami]\nport = 99999\n", [], "{cfg}: ami.port: 99999 is out of range; use a port number 1-65535"),
        ("[ami\n", [], "{cfg}: TOML syntax error: Expected ']' at the end of a table declaration (at line 1, column 5)"),
        ("", ["--listen", "nowhere"],
         "command line: --listen: 'nowhere' is not accepted; use PORT, HOST:PORT or [IPv6]:PORT"),
        ("", ["--log-level", "loud"],
         "command line: log.level: 'loud' is not accepted; use one of 'debug', 'info', 'warn', 'error', 'critical'"),
    ],
)
def test_config_error_is_one_line_and_fails(tmp_path: Path, content: str, args: list[str], message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content, encoding="utf-8")
    result = twistd("-n", "ucs", "--config", str(cfg), *args, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr == message.format(cfg=cfg) + "\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = twistd("-n", "ucs", "--config", "nope.toml", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr == "nope.toml: cannot read the config file: No such file or directory\n"


def test_starts_logs_and_stops(tmp_path: Path, running: list[Running]) -> None:
    cfg = write_config(tmp_path)
    r = Running(["--config", str(cfg)], tmp_path)
    running.append(r)
    assert f"config: {cfg}" in r.wait_for(f"UCS {ucs.__version__} starting")
    assert "AMI: connecting to 127.0.0.1:5038 as ucs (md5 login)" in r.wait_for("AMI:")
    r.wait_for("web: http://127.0.0.1:0/")
    r.wait_for("store open: sqlite:///")
    r.wait_for("UCS started")
    assert r.stop() in CLEAN_EXIT
    assert "store closed" in r.output and "Server Shut Down." in r.output
    assert "Traceback" not in r.output
    with sqlite3.connect(tmp_path / "data" / "ucs.db") as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] >= 1


def test_demo_and_json_log(tmp_path: Path, running: list[Running]) -> None:
    cfg = write_config(tmp_path)
    r = Running(["--config", str(cfg), "--demo", "--log-format", "json"], tmp_path)
    running.append(r)
    r.wait_for("UCS started")
    assert r.stop() in CLEAN_EXIT
    records = [json.loads(line) for line in r.lines if line.strip()]
    messages = [rec["message"] for rec in records]
    assert any(m.startswith("AMI: the simulated PBX (demo mode") for m in messages)
    assert {"time", "level", "namespace", "message"} <= set(records[0])


def test_log_level_filters(tmp_path: Path, running: list[Running]) -> None:
    cfg = write_config(tmp_path, '\n[log]\nlevel = "warn"\n')
    r = Running(["--config", str(cfg)], tmp_path)
    running.append(r)
    r.wait_for("ami.secret is empty")  # a warning gets through...
    assert r.stop() in CLEAN_EXIT
    assert f"UCS {ucs.__version__} starting" not in r.output  # ...info does not


def test_default_config_is_etc_ucs_toml(tmp_path: Path, running: list[Running]) -> None:
    (tmp_path / "etc").mkdir()
    write_config(tmp_path).rename(tmp_path / "etc" / "ucs.toml")
    r = Running([], tmp_path)
    running.append(r)
    assert "config: etc/ucs.toml" in r.wait_for(f"UCS {ucs.__version__} starting")
    r.wait_for("UCS started")
    assert r.stop() in CLEAN_EXIT


def test_unreachable_store_stops_with_error(tmp_path: Path, running: list[Running]) -> None:
    r = Running(["--store", "postgresql://ucs:s3cret@127.0.0.1:1/ucs", "--listen", "127.0.0.1:0"], tmp_path)
    running.append(r)
    line = r.wait_for("cannot connect to store")
    assert "postgresql://ucs:***@127.0.0.1:1/ucs" in line
    code = r.proc.wait(TIMEOUT)  # stops by itself
    r._reader.join(TIMEOUT)
    assert code == 1
    assert "s3cret" not in r.output
    assert "Traceback" not in r.output


def test_demo_is_a_living_contact_center(tmp_path: Path, running: list[Running]) -> None:
    """README's run command: the simulated PBX inside, calls flowing, CDRs stored."""
    cfg = write_config(tmp_path, "\n[demo]\ncall_rate = 300\n")
    r = Running(["--config", str(cfg), "--demo"], tmp_path)
    running.append(r)
    r.wait_for("PBX model resynchronised")
    r.wait_for("INCOMING from 420")
    ended = r.wait_for("ended: cause")
    assert "queue support" in ended or "queue sales" in ended
    assert r.stop() in CLEAN_EXIT
    with sqlite3.connect(tmp_path / "data" / "ucs.db") as conn:
        rows = conn.execute("SELECT direction, queue FROM cdr").fetchall()
    assert rows and all(direction == "INCOMING" for direction, _ in rows)
