"""``pfgraph models``: the registry and the model presets: name, representation, parameters."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``models`` sub-command."""
    p = sub.add_parser("models", help="list the models: name, representation, parameter count",
                       description="List every registered model and every model preset shipped with pfgraph "
                       "(variants name their architecture), with the parameter count of the default config.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def model_table() -> list[dict[str, Any]]:
    """One row per model preset and per registered model without a preset."""
    from pfgraph import presets
    from pfgraph.models.registry import available, resolve

    names = sorted(set(presets.names("model")) | set(available()))
    rows = []
    for name in names:
        try:
            section = resolve(name)
        except Exception as exc:  # a preset naming a model that is not installed
            rows.append({"name": name, "arch": "?", "repr": "?", "params": None, "trainable": None,
                         "description": f"unavailable: {str(exc).splitlines()[0][:80]}"})
            continue
        entry = available()[section.arch]
        try:
            model = entry.builder(dict(section.params))
            params: int | None = sum(p.numel() for p in model.parameters() if p.requires_grad)
        except Exception as exc:  # e.g. an optional dependency missing
            params = None
            desc = f"cannot build: {str(exc).splitlines()[0][:80]}"
        else:
            desc = presets.description("model", name) if section.arch != name else entry.description
            desc = desc or entry.description
        rows.append({"name": name, "arch": section.arch, "repr": section.repr, "params": params,
                     "trainable": entry.trainable, "description": desc})
    return rows


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph models``."""
    import json

    rows = model_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    w = max(len(r["name"]) for r in rows)
    print(f"{'model':<{w}}  {'repr':<5}  {'params':>10}  description")
    for r in rows:
        params = f"{r['params']:,}" if r["params"] is not None else "n/a"
        arch = f" [variant of {r['arch']}]" if r["arch"] not in (r["name"], "?") else ""
        print(f"{r['name']:<{w}}  {r['repr']:<5}  {params:>10}  {r['description']}{arch}")
    from collections import Counter

    per_repr = Counter(r["repr"] for r in rows)
    counts = ", ".join(f"{n} {name}" for name, n in per_repr.items())
    print(f"models: {len(rows)} ({counts}); train one with 'pfgraph train --repr <repr> --model <name>'")
    return 0
