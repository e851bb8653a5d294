"""The lab: a real Asterisk with ``tests/lab/asterisk/etc``, sipp phones, the real UCS.

What ``../shared/asterisk/lab-up`` does, in Python and owned by a fixture: the
``.conf`` templates rendered with free ports into a temporary run directory,
the music-on-hold tone, ``asterisk -f -C …`` as a child process, ready once
``core waitfullybooted`` answers, stopped with ``core stop now`` (and killed if
that does not do it) whatever the tests did.

Asterisk is found only through ``ASTERISK_PREFIX`` (``$PREFIX/sbin/asterisk``,
``$PREFIX/lib/asterisk/modules``, ``$PREFIX/var/lib/asterisk``) or ``asterisk``
on ``PATH`` (with the Debian/Ubuntu package's directories). Without one, or
without sipp, every lab test is skipped with one reason; without chan_sip
(Asterisk 21+) the ``sip`` half is skipped with its own.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from labkit import Lab, LabUCS, Phones, start_ucs
from twisted.internet import defer

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "asterisk" / "etc"
SCENARIOS = HERE / "asterisk" / "sipp"


def find_asterisk() -> tuple[Path, Path, Path] | None:
    """(program, module directory, data directory) of the Asterisk to test, or ``None``."""
    prefix = os.environ.get("ASTERISK_PREFIX")
    if prefix:
        p = Path(prefix)
        return p / "sbin" / "asterisk", p / "lib" / "asterisk" / "modules", p / "var" / "lib" / "asterisk"
    found = shutil.which("asterisk")
    if found is None:
        return None
    moddir = next((Path(d) for d in ("/usr/lib/x86_64-linux-gnu/asterisk/modules", "/usr/lib/aarch64-linux-gnu/asterisk/modules",
                                     "/usr/lib/asterisk/modules") if Path(d).is_dir()), Path("/usr/lib/asterisk/modules"))
    datadir = next((Path(d) for d in ("/usr/share/asterisk", "/var/lib/asterisk") if Path(d).is_dir()),
                   Path("/var/lib/asterisk"))
    return Path(found), moddir, datadir


def _why_not() -> str | None:
    """The one reason the lab cannot run here, or ``None``."""
    found = find_asterisk()
    if found is None:
        return ("no Asterisk: set ASTERISK_PREFIX to an install (PREFIX/sbin/asterisk) or put asterisk on PATH "
                "(README.md, Testing against your own Asterisk)")
    program, moddir, _ = found
    if not os.access(program, os.X_OK):
        return f"no Asterisk at {program} (ASTERISK_PREFIX={os.environ.get('ASTERISK_PREFIX', '')})"
    if not (moddir / "app_queue.so").is_file():
        return f"Asterisk's modules are not in {moddir}"
    if shutil.which("sipp") is None:
        return "no sipp for the lab's phones: apt-get install sip-tester"
    return None


NO_CHAN_SIP = (
    "this Asterisk has no chan_sip (removed in Asterisk 21): the SIP/10xx phones and the lab's carrier "
    "trunk (SIP/carrier, every flow with a customer) need it"
)


def has_chan_sip() -> bool:
    found = find_asterisk()
    return found is not None and (found[1] / "chan_sip.so").is_file()


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "chan_sip: needs chan_sip (a SIP/10xx phone or the SIP/carrier trunk)")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Skip every lab test with one reason when the lab cannot run; the chan_sip flows without chan_sip."""
    lab_items = [i for i in items if HERE in Path(str(i.fspath)).parents]
    if not lab_items:
        return
    why = _why_not()
    chan_sip = why is None and has_chan_sip()
    for item in lab_items:
        if why is not None:
            item.add_marker(pytest.mark.skip(reason=why))
        elif not chan_sip and "chan_sip" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=NO_CHAN_SIP))


def _free_ports(n: int) -> list[int]:
    """``n`` ports free for both TCP and UDP on 127.0.0.1 right now (each asked of the kernel)."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def _moh_tone(path: Path) -> None:
    """Five seconds of 440 Hz: what the held party hears (res_musiconhold needs a file)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / 8000)))
                               for i in range(40000)))


def _render(run: Path, program: Path, moddir: Path, datadir: Path, ports: dict[str, int], chan_sip: bool) -> Path:
    etc = run / "etc"
    for sub in ("etc", "lib", "log/cdr-custom", "spool", "run", "agi-bin", "moh"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    _moh_tone(run / "moh" / "moh1.wav")
    values = {"MODDIR": str(moddir), "DATADIR": str(datadir), "SBINDIR": str(program.parent), "RUN": str(run),
              **{f"{k}_PORT": str(v) for k, v in ports.items()}}
    for template in sorted(TEMPLATES.glob("*.conf")):
        text = template.read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        if template.name == "modules.conf" and not chan_sip:
            text = "".join(line for line in text.splitlines(keepends=True) if "chan_sip.so" not in line)
        (etc / template.name).write_text(text)
    return etc / "asterisk.conf"


def _start_asterisk(run: Path) -> tuple[Lab, subprocess.Popen[bytes]]:
    found = find_asterisk()
    assert found is not None
    program, moddir, datadir = found
    ami, sip, pjsip, http = _free_ports(4)
    conf = _render(run, program, moddir, datadir, {"AMI": ami, "SIP": sip, "PJSIP": pjsip, "HTTP": http},
                   (moddir / "chan_sip.so").is_file())
    console = open(run / "console.log", "wb")  # noqa: SIM115 - the child writes it until it ends
    proc = subprocess.Popen([str(program), "-C", str(conf), "-f"], stdin=subprocess.DEVNULL,
                            stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
    console.close()
    lab = Lab(program=program, conf=conf, run=run, ami_port=ami, sip_port=sip, pjsip_port=pjsip,
              http_port=http, chan_sip=(moddir / "chan_sip.so").is_file(), scenarios=SCENARIOS)
    ctl = run / "run" / "asterisk.ctl"
    # The console socket appears once the core is up; Popen.wait is the tick and
    # notices at once an Asterisk that died (a bad configuration, a port taken).
    for _ in range(300):
        try:
            code = proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            if ctl.exists():
                break
            continue
        raise RuntimeError(f"Asterisk exited with {code} while starting:\n{lab.console_tail()}")
    else:
        _stop_asterisk(lab, proc)
        raise RuntimeError(f"Asterisk's console socket {ctl} did not appear in 15 s:\n{lab.console_tail()}")
    try:
        lab.cli("core waitfullybooted", timeout=30)
    except Exception:
        _stop_asterisk(lab, proc)
        raise
    return lab, proc


def _stop_asterisk(lab: Lab, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            lab.cli("core stop now", timeout=10)
        except Exception:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A real Asterisk with the lab's configuration on free ports, stopped after the session."""
    keep = os.environ.get("UCS_LAB_KEEP")  # a directory to keep the run in (console.log, CDRs) for a post-mortem
    run = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="ucs-lab-"))
    lab, proc = _start_asterisk(run)
    try:
        yield lab
    finally:
        _stop_asterisk(lab, proc)
        if not keep:
            shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def phones(lab: Lab, tmp_path: Path) -> Iterator[Phones]:
    """Starts sipp phones and callers for one test; every one is killed at teardown."""
    p = Phones(lab, tmp_path)
    try:
        yield p
    finally:
        pytest_twisted.blockon(defer.ensureDeferred(p.kill_all()))


@pytest.fixture
def ucs(lab: Lab, phones: Phones, tmp_path: Path) -> Iterator[LabUCS]:
    """The real UCS server connected to the lab's Asterisk, with the lab's users and phones
    in its directory; stopped after the test, and the lab put back as it was (no queue
    members, no channels), so the next test starts clean even after a failure."""
    server = pytest_twisted.blockon(defer.ensureDeferred(start_ucs(lab, tmp_path)))
    try:
        yield server
    finally:
        pytest_twisted.blockon(defer.ensureDeferred(server.stop()))
        lab.reset()
