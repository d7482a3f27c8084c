"""``pfgraph demo``: the demo study (``pfgraph/presets/study/demo.yaml``, ``demo_quick.yaml`` for
``--quick``) run by the study runner, like any other study.

The demo is orchestrated nowhere else: its steps, resume and ledgers are the study runner's, so a
re-run skips what is done and current and redoes an evaluation whose checkpoint changed. The
comparison report lands in ``<out>/report/index.html`` (the presets' ``report_dirs``).
"""

from __future__ import annotations

import time
from pathlib import Path

from pfgraph.study.config import StudyConfig, load_study
from pfgraph.study.runner import Study

#: The demo's study presets.
FULL, QUICK = "demo", "demo_quick"
#: The presets' training seed (the jet set is simulated with the next one).
DEFAULT_SEED = 1


def demo_study(quick: bool = False, seed: int = DEFAULT_SEED) -> tuple[StudyConfig, str | None]:
    """The demo's study config for ``seed`` and the source to name in its step commands (the preset
    name; None for another seed, so commands point at the resolved ``study.yaml`` copy)."""
    name = QUICK if quick else FULL
    cfg, _ = load_study(name)
    if seed == DEFAULT_SEED:
        return cfg, name
    cfg.training.seeds = [seed]
    cfg.datasets[cfg.train_on].seed = seed
    for ds in cfg.evaluate_on:
        cfg.datasets[ds].seed = seed + 1
    return cfg, None


def run_demo(out: str | Path, quick: bool = False, seed: int = DEFAULT_SEED) -> Path:
    """Run the demo study into folder ``out``; returns the report's index.html."""
    cfg, source = demo_study(quick, seed)
    study = Study(cfg, out, source=source)
    t0 = time.perf_counter()
    study.run()
    index = study.report_dir(cfg.evaluate_on[0]) / "index.html"
    print(f"demo: {len(cfg.models)} models trained and evaluated in {time.perf_counter() - t0:.0f} s; open {index}",
          flush=True)
    return index
