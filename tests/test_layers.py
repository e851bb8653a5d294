"""No module of ``ucs/`` imports a layer above its own (issue 15.3).

The layers, bottom first, are the data flow of docs/architecture.md: the
shared vocabulary; the wires (AMI, the store, the config file) and the
simulated Asterisk; the PBX model; the directory; calls; what is built on
calls (agents, caller lookup, plugins); the API each of those registers; the
fronts (agent-bar WebSocket, Interaction Processor); the container that wires
them.  A layer is a property of a module, not of its package: ``ucs/calls/``
holds the call layer and, in ``control_api.py``, the API commands that drive
it, which sit with the other APIs.

Read from the source by ``tests/test_import_cycles.py``'s graph, so an import
put off into a function counts, and an ``if TYPE_CHECKING:`` one does not.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from test_import_cycles import import_graph

#: Bottom first.  A module takes the layer of the first pattern that matches
#: it, trying the layers top first, so ``ucs.calls.control_api`` is "api"
#: although ``ucs.calls.*`` is "calls".
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("vocabulary", ("ucs", "ucs.constants", "ucs.error", "ucs.interfaces", "ucs.wirejson",
                    "ucs.fragments", "ucs.events", "ucs.bus", "ucs.metrics")),
    ("wire", ("ucs.ami", "ucs.ami.*", "ucs.store", "ucs.store.*", "ucs.config", "ucs.config.*",
              "ucs.cluster", "ucs.cluster.*")),
    ("simulator", ("ucs.sim", "ucs.sim.*")),
    ("pbx", ("ucs.pbx", "ucs.pbx.*")),
    ("directory", ("ucs.directory", "ucs.directory.*")),
    ("calls", ("ucs.calls", "ucs.calls.*")),
    ("on calls", ("ucs.agents", "ucs.agents.*", "ucs.lookup", "ucs.lookup.*", "ucs.supervisor", "ucs.supervisor.*",
                  "ucs.plugins", "ucs.plugins.*")),
    ("api", ("ucs.api", "ucs.api.*", "ucs.*.api", "ucs.*.*_api")),
    ("fronts", ("ucs.web", "ucs.web.*", "ucs.iserver", "ucs.iserver.*")),
    ("container", ("ucs.server", "ucs.lifecycle", "ucs.domain", "ucs.endpoints", "ucs.standbys",
                   "ucs.demo", "ucs.demo_pbx", "ucs.replay", "ucs.tap",
                   "ucs.admin", "ucs.admin.*", "ucs.cluster.node",
                   "ucs.cluster.forward", "ucs.cluster.mirror", "ucs.cluster.quiet", "ucs.cluster.gap")),
]


def layer_of(module: str) -> int:
    for rank in range(len(LAYERS) - 1, -1, -1):
        if any(fnmatchcase(module, pattern) for pattern in LAYERS[rank][1]):
            return rank
    raise LookupError(module)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            if layer_of(target) > layer_of(module):
                found.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in import_graph():
        try:
            layer_of(module)
        except LookupError:
            unplaced.append(module)
    assert not unplaced, f"modules in no layer of tests/test_layers.py's LAYERS: {unplaced}"


def test_no_module_imports_a_layer_above_it() -> None:
    found = upward_imports(import_graph())
    assert not found, "imports that run up the layers:\n" + "\n".join(found)


def test_the_checker_sees_an_upward_import() -> None:
    graph = {
        "ucs.calls.tracker": {"ucs.web.hub", "ucs.pbx.pbx"},
        "ucs.calls.control_api": {"ucs.api.registry"},
        "ucs.web.hub": set(),
        "ucs.pbx.pbx": set(),
        "ucs.api.registry": set(),
    }
    assert upward_imports(graph) == ["ucs.calls.tracker (calls) imports ucs.web.hub (fronts)"]
