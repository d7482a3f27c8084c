"""The package's import layering: no module imports a higher layer, and models know no io, sim or training.

Layers, lowest first (a module may import its own layer and any lower one):

0. ``pfgraph`` (the package root's ``__version__``), ``errors``, ``geometry``, ``config``, ``presets``, ``utils``
1. ``io``        the file contract and readers/writers
2. ``sim``       the simulator (writes files through io)
3. ``repr``      events -> model inputs (reads files through io)
4. ``models``    tensors and their config only: additionally never io, sim or train (issue 17)
5. ``training``
6. ``eval``
7. ``reporting``
8. ``study``     runs the stages above over a study file
9. ``cli``

Every ``import`` statement counts, including those inside functions (lazy imports are still
dependencies). A new top-level module or package must be given a layer here.
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
    frozenset({"study"}),
    frozenset({"cli"}),
)
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}

#: Known upward imports, each with the reason it is still here; remove an entry when its import goes.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

#: What a model module may never import (issue 17: a model knows tensors and its config).
MODEL_FORBIDDEN = ("pfgraph.io", "pfgraph.sim", "pfgraph.training")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _unit(module: str) -> str:
    """The top-level unit of a pfgraph module name: 'pfgraph.io.root' -> 'io', 'pfgraph' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported pfgraph module) of every import statement of ``path``, lazy ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_name = _module_name(path)
    package = module_name if path.name == "__init__.py" else module_name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pfgraph"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "pfgraph":
                continue
            if module == "pfgraph":  # from pfgraph import geometry / __version__
                out += [(node.lineno, f"pfgraph.{a.name}" if a.name != "__version__" else "pfgraph")
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


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for path in _sources():
        module = _module_name(path)
        own = LAYER_OF[_unit(module)]
        for line, target in _imports(path):
            unit = _unit(target)
            assert unit in LAYER_OF, f"{path}:{line}: imports {target}, whose unit '{unit}' has no layer"
            if LAYER_OF[unit] > own and (module, target) not in ALLOWED_UPWARD:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} (layer {own}) imports {target} "
                           f"(layer {LAYER_OF[unit]})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_allowed_upward_imports_still_exist() -> None:
    """An exception that is no longer needed must leave the list (so the list never hides a new one)."""
    present = {(_module_name(p), t) for p in _sources() for _, t in _imports(p)}
    stale = sorted(set(ALLOWED_UPWARD) - present)
    assert not stale, f"remove from ALLOWED_UPWARD, the import is gone: {stale}"


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
                   "from pfgraph import geometry, __version__\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "pfgraph"
    try:
        found = [t for _, t in _imports(src)]
    finally:
        PACKAGE = saved
    assert sorted(found) == ["pfgraph", "pfgraph.geometry", "pfgraph.io.root", "pfgraph.sim", "pfgraph.training"]
    assert [_unit(t) for t in sorted(found)] == ["__init__", "geometry", "io", "sim", "training"]
