"""Packaged plugins: IUCSPlugin providers found with twisted.plugin.getPlugins,
with the life cycle of plugin files; and the example package
(examples/ucs-greeter) pip-installed into a fresh venv and loaded there."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_plugins_harness import PluginStack, logs_fixture, sqlite_store_fixture, write  # noqa: F401
from twisted.plugin import getPlugins

from ucs.events import EVENT_AGENT_LOGIN
from ucs.plugins.interfaces import IUCSPlugin, UCSPlugin

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ucs-greeter"

GREETER = """
    from ucs.events import EVENT_AGENT_LOGIN

    GREETING = {greeting!r}

    class Greeter:
        def __init__(self, ucs):
            self.ucs = ucs
            self.greeted = []
            self.stopped = False
            ucs.addCallback(EVENT_AGENT_LOGIN, self.logged_in)

        def logged_in(self, agent, args):
            self.greeted.append(f"{{GREETING}}, {{agent}}")

        def stop(self):
            self.stopped = True
            self.ucs.removeCallback(EVENT_AGENT_LOGIN, self.logged_in)
"""


@pytest.fixture
def package(tmp_path: Path) -> Iterator[tuple[Any, str, Path]]:
    """A package of IUCSPlugin drop-ins (like twisted.plugins) and the module the plugin's
    code lives in, both importable from tmp_path."""
    tag = secrets.token_hex(4)
    pkg_name, impl_name = f"ucs_test_dropins_{tag}", f"ucs_test_greeter_{tag}"
    pkg = tmp_path / pkg_name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    write(pkg, "greeter_dropin", f"""
        from ucs.plugins.interfaces import UCSPlugin
        greeter = UCSPlugin("greeter", "{impl_name}:Greeter", "greets agents")
        broken = UCSPlugin("broken", "{impl_name}:NoSuchClass")
    """)
    impl = write(tmp_path, impl_name, GREETER.format(greeting="Hello"))
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(pkg_name), impl_name, impl
    finally:
        sys.path.remove(str(tmp_path))
        for name in (pkg_name, f"{pkg_name}.greeter_dropin", impl_name):
            sys.modules.pop(name, None)


@pytest_twisted.ensureDeferred
async def test_packaged_plugins_have_the_same_life_cycle(sqlite_store: Any, tmp_path: Path,
                                                         package: tuple[Any, str, Path]) -> None:
    pkg, impl_name, impl = package
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    p = PluginStack(sqlite_store, plugin_dir, packages=[pkg])
    await p.start()
    try:
        greeter = p.plugin("greeter")
        p.bus.publish(EVENT_AGENT_LOGIN, "alice")
        assert greeter.greeted == ["Hello, alice"]
        listed = {d["name"]: d for d in p.host.list_plugins()}
        assert listed["greeter"]["kind"] == "package" and listed["greeter"]["state"] == "running"
        assert listed["greeter"]["class"] == f"{impl_name}:Greeter"
        assert listed["broken"]["state"] == "failed"
        assert "failed to construct: AttributeError" in listed["broken"]["error"]

        # Reload picks up the edited code.
        write(impl.parent, impl_name, GREETER.format(greeting="Ahoj"))
        importlib.invalidate_caches()
        su = p.session(superuser=True)
        await p.call(su, "plugins.load", "greeter")
        assert greeter.stopped
        p.bus.publish(EVENT_AGENT_LOGIN, "bob")
        assert greeter.greeted == ["Hello, alice"] and p.plugin("greeter").greeted == ["Ahoj, bob"]

        await p.call(su, "plugins.unload", "greeter")
        p.bus.publish(EVENT_AGENT_LOGIN, "carol")
        assert p.host.get("greeter").instance is None
        await p.call(su, "plugins.load", "greeter")
        assert p.host.get("greeter").state == "running"
    finally:
        p.stop()


@pytest_twisted.ensureDeferred
async def test_a_plugin_file_wins_over_a_packaged_plugin_of_the_same_name(
        sqlite_store: Any, tmp_path: Path, package: tuple[Any, str, Path]) -> None:
    pkg, _, _ = package
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    write(plugin_dir, "greeter", "UCS_PLUGIN = 'G'\nclass G:\n    def __init__(self, ucs): ...\n")
    p = PluginStack(sqlite_store, plugin_dir, packages=[pkg])
    await p.start()
    try:
        assert p.host.get("greeter").kind == "file"
        assert type(p.plugin("greeter")).__name__ == "G"
    finally:
        p.stop()


def test_ucs_plugin_factory_strings() -> None:
    assert UCSPlugin("x", "a.b:C.D")._attr == "C.D"
    assert UCSPlugin("x", "a.b.C")._module == "a.b"
    for bad in ("C", "a.b:", ":C"):
        with pytest.raises(ValueError, match="give 'package.module:Class'"):
            UCSPlugin("x", bad)
    with pytest.raises(ValueError, match="needs a name"):
        UCSPlugin(" ", "a:B")


def test_the_example_package_is_not_installed_here() -> None:
    import twisted.plugins

    assert "greeter" not in {p.name for p in getPlugins(IUCSPlugin, twisted.plugins)}


# --- the example package, installed with pip into a fresh venv ----------------------------------

CHECK = r"""
import json, sys
from twisted.internet.task import Clock
from ucs.bus import EventBus
from ucs.events import EVENT_AGENT_LOGIN
from ucs.plugins.facade import PluginContext
from ucs.plugins.host import PluginHost

bus = EventBus()
host = PluginHost(PluginContext(Clock(), bus=bus), None)   # default: packages ("twisted.plugins",)
host.startService()
greeter = host.get("greeter").instance

class Agent(dict):
    pass

bus.publish(EVENT_AGENT_LOGIN, Agent(displayname="Alice Agent"))
host.stopService()
print(json.dumps({
    "plugins": host.list_plugins(),
    "greeted": greeter.greeted,
    "module": type(greeter).__module__,
    "file": sys.modules[type(greeter).__module__].__file__,
}))
"""


def _can_build_offline() -> bool:
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    major, minor, *_ = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)  # bdist_wheel is in setuptools since 70.1


def test_example_package_pip_installed_into_a_fresh_venv_is_loaded(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    # UCS and its dependencies come from the environment running the tests (where
    # UCS is installed, editable), as --system-site-packages would bring a system's.
    here = sysconfig.get_paths()["purelib"]
    Path(purelib, "ucs_under_test.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    install = [str(python), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--quiet"]
    if _can_build_offline():
        install += ["--no-index", "--no-build-isolation"]
    source = tmp_path / "ucs-greeter"  # pip builds in the source tree: keep the repository clean
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([*install, str(source)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Path(purelib, "twisted", "plugins", "ucs_greeter_plugin.py").is_file()
    assert not Path(purelib, "twisted", "__init__.py").exists()

    proc = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    (greeter,) = [p for p in result["plugins"] if p["name"] == "greeter"]
    assert greeter["kind"] == "package" and greeter["state"] == "stopped" and greeter["error"] is None
    assert greeter["class"] == "ucs_greeter.plugin:Greeter"
    assert result["greeted"] == ["Alice Agent"]
    assert result["module"] == "ucs_greeter.plugin"
    assert result["file"].startswith(purelib)  # the installed copy, not the source tree
