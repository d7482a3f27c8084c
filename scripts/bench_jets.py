"""Generalisation to jets: evaluate trained runs on a test set and jet sets, check the jet targets.

    python scripts/bench_jets.py --runs runs/analytic runs/calibrated runs/cnn \\
        --test data/b050_test.root --jets data/b050_jet.root data/b050_jet300.root --out evals/jets

Each run (a ``pfgraph train`` folder) is evaluated with ``pfgraph evaluate`` on the non-jet test
set and on every jet set (folders that already hold a metrics.json are reused, so the script
resumes). The table gives, per model and jet set, the figures of DESIGN §6 / issue 15 with their
68 % bootstrap intervals and whether each target holds:

* jet dE/E (truth-jet pixels) |median| <= 0.02 and 68 % half-width <= 0.05;
* per-pixel residual 68 % half-width on the jet set <= 1.2 x its value on the test set;
* jet position median <= 0.2 px;
* fake energy fraction <= the analytic inversion's on the same set (needs an ``analytic`` run);

plus the share of truth energy above the training range and the residual half-width there.
A target counts as met on the measured value. Writes the ``## Generalisation to jets`` section of
docs/BENCHMARKS.md unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pfgraph  # noqa: E402
from pfgraph.eval.bootstrap import format_figure  # noqa: E402
from pfgraph.eval.metrics import read_metrics  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402

TARGETS = {"jet_median": 0.02, "jet_width": 0.05, "pixel_ratio": 1.2, "position": 0.2}


def evaluate(run: Path, data: Path, out: Path) -> dict[str, Any]:
    """metrics.json of ``run`` on ``data`` (evaluated once; an existing result is reused)."""
    if not (out / "metrics.json").exists():
        return pfgraph.evaluate(run, data, out, plots=False).metrics
    return read_metrics(out / "metrics.json")


def fig(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """A headline figure of a metrics document."""
    return doc["headline"]["figures"][key]


def mark(ok: bool | None) -> str:
    """Target cell marker."""
    return "-" if ok is None else ("yes" if ok else "**no**")


def rows_for(name: str, test: dict[str, Any], jets: dict[str, Any], analytic: dict[str, Any] | None
             ) -> dict[str, str]:
    """The table cells of one model on one jet set."""
    med, width = fig(jets, "jet_energy_rel_median"), fig(jets, "jet_energy_rel_half_width_68")
    pos = fig(jets, "jet_position_median")
    pix_jet, pix_test = fig(jets, "residual_half_width_68")["value"], fig(test, "residual_half_width_68")["value"]
    fake = fig(jets, "fake_energy_fraction")["value"]
    fake_ref = fig(analytic, "fake_energy_fraction")["value"] if analytic else None
    ratio = pix_jet / pix_test if pix_jet is not None and pix_test else None
    ex = jets["energy"]["extrapolation"]
    return {
        "model": name,
        "params": f"{jets['training']['parameters']:,}" if jets["training"]["parameters"] is not None else "-",
        "epochs": str(jets["training"]["epochs"]) if jets["training"]["epochs"] is not None else "-",
        "dE/E median": format_figure(med, 3), "ok1": mark(None if med["value"] is None else abs(med["value"]) <= TARGETS["jet_median"]),
        "dE/E 68%": format_figure(width, 3), "ok2": mark(None if width["value"] is None else width["value"] <= TARGETS["jet_width"]),
        "matched dE/E median": format_figure(fig(jets, "jet_energy_match_rel_median"), 3),
        "r 68% test": format_figure(fig(test, "residual_half_width_68"), 3), "r 68% jets": format_figure(fig(jets, "residual_half_width_68"), 3),
        "ratio": f"{ratio:.2f}" if ratio is not None else "-",
        "ok3": mark(None if ratio is None else ratio <= TARGETS["pixel_ratio"]),
        "D median": format_figure(pos, 2), "ok4": mark(None if pos["value"] is None else pos["value"] <= TARGETS["position"]),
        "fake": f"{fake:.4f}" if fake is not None else "-",
        "ok5": mark(None if fake is None or fake_ref is None else fake <= fake_ref),
        "above range": f"{100 * ex['energy_fraction_above']:.1f} %" if ex["energy_fraction_above"] is not None else "-",
        "r 68% above": (f"{ex['above']['robust']['half_width_68']:.3f}"
                        if ex["above"]["robust"]["half_width_68"] is not None else "-"),
    }


HEADER = ["model", "params", "epochs", "dE/E median", "ok1", "dE/E 68%", "ok2", "matched dE/E median",
          "r 68% test", "r 68% jets", "ratio", "ok3", "D median", "ok4", "fake", "ok5", "above range", "r 68% above"]
TITLES = {"ok1": "\\|median\\| <= 0.02", "ok2": "<= 0.05", "ok3": "<= 1.2", "ok4": "<= 0.2 px",
          "ok5": "<= analytic", "ratio": "jets / test", "dE/E median": "jet dE/E median (truth-jet pixels)",
          "dE/E 68%": "jet dE/E 68% half-width", "matched dE/E median": "jet dE/E median (matched jets)",
          "r 68% test": "r 68% half-width, test", "r 68% jets": "r 68% half-width, jets",
          "D median": "jet D median [px]", "fake": "fake energy fraction",
          "above range": "truth energy above training range", "r 68% above": "r 68% half-width above range"}


def main() -> None:
    """Evaluate, tabulate, record."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="pfgraph train run folders")
    ap.add_argument("--test", type=Path, required=True, help="non-jet test set (independent of training)")
    ap.add_argument("--jets", nargs="+", type=Path, required=True, help="jet sets (events files with a jet image)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the evaluations")
    ap.add_argument("--note", default="", help="a sentence on how the runs were trained, put above the tables")
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = ap.parse_args()
    names = [r.name for r in args.runs]
    tests = {n: evaluate(r, args.test, args.out / args.test.stem / n) for n, r in zip(names, args.runs)}
    body = [f"Command: `python scripts/bench_jets.py {shlex.join(sys.argv[1:])}` ({machine()}).", ""]
    if args.note:
        body += [args.note, ""]
    body += ["Figures: value [68 % bootstrap interval over events]; targets of issue 15 / DESIGN §6 checked on the "
             "value (yes / **no**). 'fake <= analytic' compares with the analytic inversion on the same set.", ""]
    for jet in args.jets:
        docs = {n: evaluate(r, jet, args.out / jet.stem / n) for n, r in zip(names, args.runs)}
        analytic = docs.get("analytic")
        body += [f"### `{jet.name}` ({docs[names[0]]['dataset']['name']}, {docs[names[0]]['dataset']['n_events']} "
                 "events)", "",
                 "| " + " | ".join(TITLES.get(h, h) for h in HEADER) + " |", "|" + "---|" * len(HEADER)]
        for n in names:
            cells = rows_for(n, tests[n], docs[n], analytic)
            body.append("| " + " | ".join(cells[h] for h in HEADER) + " |")
        body.append("")
    text = "\n".join(body)
    print(text)
    if not args.no_doc:
        update_section("Generalisation to jets", text)


if __name__ == "__main__":
    main()
