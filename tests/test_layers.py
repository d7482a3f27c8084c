"""The package's import layering: one way, no exceptions (DESIGN section 1).

Data flows ``sim -> io (ROOT) -> repr -> models -> training -> eval -> reporting``, with ``study``
(and the CLI and the package's API) above all of them. In imports, lowest first (a module may
import its own layer and any lower one):

0. ``pfgraph`` (the package root's ``__version__``), ``errors``, ``geometry``, ``config``, ``presets``, ``utils``
1. ``io``        the file contract and readers/writers
2. ``sim``       the simulator (writes its files through io)
3. ``repr``      events -> model inputs (reads files through io)
4. ``models``    tensors and their config only
5. ``training``
6. ``eval``
7. ``reporting``
8. ``api``       the package's API: ``import pfgraph`` then ``pfgraph.train(...)`` (the lazy stage
   functions of ``pfgraph/__init__.py``); ``from pfgraph import train`` counts as the stage's module
9. ``study``     runs the stages above over a study file (and the demo, a study)
10. ``cli``

and, within that order, what a layer never imports (:data:`NEVER`): no stage runs another stage,
so only study, the API and the CLI import ``sim`` (the trainer reads files, it never simulates);
reporting renders evaluation outputs only (never training, the model or its representation);
models know no io, sim or training.

Every ``import`` statement counts, including those inside functions (lazy imports are still
dependencies). A new top-level module or package must be given a layer here. There is no list
of allowed exceptions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pfgraph"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"__init__", "errors", "geometry", "config", "presets", "utils"}),
    frozenset({"io"}),
    frozenset({"sim"}),
    frozenset({"repr"}),
    frozenset({"models"}),
    frozenset({"training"}),
    frozenset({"eval"}),
    frozenset({"reporting"}),
    frozenset({"api"}),
    frozenset({"study"}),
    frozenset({"cli"}),
)
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}

#: Lower layers a layer still never imports (see the module docstring).
NEVER: dict[str, frozenset[str]] = {
    "repr": frozenset({"sim"}),
    "models": frozenset({"io", "sim", "training"}),
    "training": frozenset({"sim"}),
    "eval": frozenset({"sim", "repr", "models"}),  # eval sees the grid only: to_grid runs in training
    "reporting": frozenset({"sim", "repr", "models", "training"}),
}
#: What ``import pfgraph`` (the bare package, used as ``pfgraph.train(...)``) stands for: the API layer.
API_TARGET = "pfgraph (API)"


def _api_table() -> dict[str, str]:
    """The package root's lazy API, name -> defining module (``_API`` of ``pfgraph/__init__.py``)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_API" for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError("pfgraph/__init__.py: no _API table")


API = _api_table()

#: What a model module may never import (issue 17: a model knows tensors and its config).
MODEL_FORBIDDEN = ("pfgraph.io", "pfgraph.sim", "pfgraph.training")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _unit(module: str) -> str:
    """The top-level unit of a pfgraph module name: 'pfgraph.io.root' -> 'io', 'pfgraph' -> '__init__'."""
    if module == API_TARGET:
        return "api"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported pfgraph module) of every import statement of ``path``, lazy ones included
    (``import pfgraph``: :data:`API_TARGET`; ``from pfgraph import train``: the module defining it)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_name = _module_name(path)
    package = module_name if path.name == "__init__.py" else module_name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, API_TARGET if a.name == "pfgraph" else a.name) for a in node.names
                    if a.name.split(".")[0] == "pfgraph"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "pfgraph":
                continue
            if module == "pfgraph":  # from pfgraph import geometry / __version__ / train (the API's stage)
                out += [(node.lineno, "pfgraph" if a.name == "__version__" else API.get(a.name, f"pfgraph.{a.name}"))
                        for a in node.names]
            else:
                out.append((node.lineno, module))
    return out


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_top_level_unit_has_a_layer() -> None:
    units = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    missing = sorted(units - set(LAYER_OF))
    assert not missing, f"pfgraph/{missing}: give these a layer in tests/test_layers.py LAYERS"


def test_no_module_imports_a_higher_layer_or_a_layer_it_never_imports() -> None:
    bad = []
    for path in _sources():
        module = _module_name(path)
        own_unit = _unit(module)
        own = LAYER_OF[own_unit]
        for line, target in _imports(path):
            unit = _unit(target)
            assert unit in LAYER_OF, f"{path}:{line}: imports {target}, whose unit '{unit}' has no layer"
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {module} (layer {own}) imports {target}"
            if LAYER_OF[unit] > own:
                bad.append(f"{where} (layer {LAYER_OF[unit]}, above)")
            elif unit in NEVER.get(own_unit, ()):
                bad.append(f"{where} ({own_unit} never imports {unit})")
    assert not bad, "imports against the one-way layering:\n" + "\n".join(bad)


def test_no_stage_imports_the_simulator_and_reporting_never_training() -> None:
    """Issue 30's acceptance, stated on its own: the trainer never simulates, the report never trains."""
    found = sorted(f"{_module_name(p)} imports {t}" for p in _sources() for _, t in _imports(p)
                   if (_unit(_module_name(p)), _unit(t)) in {("training", "sim"), ("reporting", "training"),
                                                             ("reporting", "sim")})
    assert not found, found


def test_models_import_no_io_sim_or_train() -> None:
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}"
           for path in sorted((PACKAGE / "models").glob("*.py"))
           for line, target in _imports(path)
           if any(target == f or target.startswith(f + ".") for f in MODEL_FORBIDDEN)]
    assert not bad, "models must not depend on io, sim or train:\n" + "\n".join(bad)


def test_importing_every_model_loads_no_io_sim_or_train() -> None:
    """Transitively too: building any registered model pulls in no data, simulator or training code."""
    code = ("import sys\n"
            "from pfgraph.models.registry import available\n"
            "for entry in available().values():\n"
            "    entry.builder({})\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            f"({[f.split('.') for f in MODEL_FORBIDDEN]!r}))\n"
            "print(len(available()), bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    n, bad = out.stdout.strip().split(" ", 1)
    assert int(n) >= 10 and bad == "[]", f"importing the models loaded {bad}"


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker finds plain, lazy, relative and package-root imports (the check can fail)."""
    src = tmp_path / "pfgraph" / "models" / "x.py"
    src.parent.mkdir(parents=True)
    src.write_text("import pfgraph.io.root\n"
                   "def f():\n    from pfgraph.training import config\n"
                   "from ..sim import detector\n"
                   "from pfgraph import geometry, __version__\n"
                   "import pfgraph\nfrom pfgraph import train\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "pfgraph"
    try:
        found = [t for _, t in _imports(src)]
    finally:
        PACKAGE = saved
    assert sorted(found) == ["pfgraph", API_TARGET, "pfgraph.geometry", "pfgraph.io.root", "pfgraph.sim",
                             "pfgraph.training", "pfgraph.training.stage"]
    assert [_unit(t) for t in sorted(found)] == ["__init__", "api", "geometry", "io", "sim", "training", "training"]
