"""Residual models (issue 26): the loss A/B and the learning curves, beside analytic and the oracle.

    python scripts/bench_residual.py --train-events 10000 --test-events 1000 --epochs 10 --seeds 1 2 3
    python scripts/bench_residual.py --train-events 600 --test-events 200 --epochs 3 --threads 1 --no-doc  # a probe

Simulates (once; existing files are reused) a B = 0.5 training file, an independent test file
with the ``oracle`` image (``output.oracle=true``) and, with ``--jet-events N``, a Pythia jet file
with it too. Trains ``analytic`` (nothing to train) and, for every model of ``--models`` and every
seed, a run with the aligned loss (``train.loss=rel_huber``, the residual presets' default) and,
for the models of ``--ab-models``, the same model and seed with ``train.loss=mse``: the loss A/B.
Every run is evaluated on every test set (``pfgraph evaluate``; folders that already hold a
metrics.json, runs that already hold a train_summary.json, are reused, so the script resumes).

The tables give, per run and set, the figures of issue 26 with their 68 % bootstrap intervals and
whether each target holds **for that seed**: r 68 % half-width <= 0.8 x analytic's, MSE per image
below analytic's, fake energy <= analytic's, jet dE/E |median| <= 0.02 and half-width <=
analytic's; the oracle (each particle from its own measurements, the measured floor) is a row of
its own. The learning curves are each run's validation r half-width per epoch and its budget
status. Writes (or replaces) its section of the benchmarks page, titled :data:`TITLE`, unless
``--no-doc`` (the section does not exist until the script has run at a proper size).
"""

from __future__ import annotations

import argparse
import json
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

TITLE = "Residual models and the aligned loss"
#: Issue 26's per-pixel target: the residual model's r half-width at most this times analytic's.
WIDTH_RATIO = 0.8
JET_MEDIAN = 0.02


def simulate(preset: str, events: int, seed: int, out: Path, *overrides: str) -> Path:
    """The events file ``out`` (simulated once; an existing file is reused)."""
    if not out.exists():
        pfgraph.simulate(preset, out, events=events, seed=seed, overrides=list(overrides))
    return out


def train(model: str, out: Path, data: Path, epochs: int, seed: int, overrides: list[str]) -> Path:
    """A run folder (trained once; a finished run is reused)."""
    if not (out / "train_summary.json").exists():
        pfgraph.train(model, out, data, epochs=epochs, seed=seed, overrides=overrides)
    return out


def evaluate(run: Path, data: Path, out: Path, bootstrap: int) -> dict[str, Any]:
    """metrics.json of ``run`` on ``data`` (evaluated once; an existing result is reused)."""
    if not (out / "metrics.json").exists():
        return pfgraph.evaluate(run, data, out, plots=False, bootstrap=bootstrap, device="cpu").metrics
    return read_metrics(out / "metrics.json")


def fig(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """A headline figure of a metrics document (or of its ``baselines.oracle`` section)."""
    return doc["headline"]["figures"][key]


def mark(ok: bool | None) -> str:
    """A target cell."""
    return "-" if ok is None else ("yes" if ok else "**no**")


def row(label: str, doc: dict[str, Any], ref: dict[str, Any], training: dict[str, Any] | None) -> list[str]:
    """One table row: figures with intervals and the per-seed targets against ``ref`` (analytic)."""
    def value(d: dict[str, Any], key: str) -> float | None:
        return fig(d, key)["value"]

    hw, hw_ref = value(doc, "residual_half_width_68"), value(ref, "residual_half_width_68")
    mse, mse_ref = value(doc, "mse_per_image"), value(ref, "mse_per_image")
    fake, fake_ref = value(doc, "fake_energy_fraction"), value(ref, "fake_energy_fraction")
    jm, jw, jw_ref = value(doc, "jet_energy_rel_median"), value(doc, "jet_energy_rel_half_width_68"), \
        value(ref, "jet_energy_rel_half_width_68")
    t = training or {}
    return [
        label, str(t.get("epochs", "-")), str(t.get("status") or "-"),
        f"{t['train_time_s']:.0f}" if t.get("train_time_s") is not None else "-",
        format_figure(fig(doc, "residual_half_width_68"), 3),
        f"{hw / hw_ref:.2f}" if hw is not None and hw_ref else "-",
        mark(None if hw is None or hw_ref is None else hw <= WIDTH_RATIO * hw_ref),
        format_figure(fig(doc, "residual_median"), 3),
        format_figure(fig(doc, "mse_per_image"), 3), mark(None if mse is None or mse_ref is None else mse < mse_ref),
        format_figure(fig(doc, "fake_energy_fraction"), 4),
        mark(None if fake is None or fake_ref is None else fake <= fake_ref),
        format_figure(fig(doc, "missed_pixel_fraction"), 4),
        format_figure(fig(doc, "jet_energy_rel_median"), 3), mark(None if jm is None else abs(jm) <= JET_MEDIAN),
        format_figure(fig(doc, "jet_energy_rel_half_width_68"), 3),
        mark(None if jw is None or jw_ref is None else jw <= jw_ref),
    ]


HEADER = ["run", "epochs", "status", "train [s]", "r 68% half-width", "/ analytic", f"<= {WIDTH_RATIO} x analytic",
          "r median", "MSE / image [GeV^2]", "< analytic", "fake energy", "<= analytic", "missed truth pixels",
          "jet dE/E median", "\\|median\\| <= 0.02", "jet dE/E 68% half-width", "<= analytic"]


def curves(runs: dict[str, Path]) -> list[str]:
    """Validation r half-width per epoch of every run (its train_summary.json history)."""
    lines = ["| run | status | best epoch | validation r 68% half-width per epoch |", "|---|---|---|---|"]
    for label, run in runs.items():
        summary = json.loads((run / "train_summary.json").read_text())
        hist = (summary.get("history") or {}).get("val_half_width") or []
        widths = ", ".join(f"{w:.3f}" if w is not None else "-" for w in hist)
        lines.append(f"| {label} | {summary.get('status', '-')} | {summary.get('best_epoch', '-')} | {widths or '-'} |")
    return lines


def main() -> None:
    """Simulate, train, evaluate, tabulate, record."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-events", type=int, default=10000, help="events of the training file (80/10/10 split)")
    ap.add_argument("--test-events", type=int, default=1000, help="events of the independent test file")
    ap.add_argument("--jet-events", type=int, default=0, help="events of a Pythia jet file (0: none; needs pythia8)")
    ap.add_argument("--epochs", type=int, default=10, help="epoch cap of every run (early stopping may end it sooner)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1], help="training seeds (every model and loss)")
    ap.add_argument("--models", nargs="+", default=["residual_cnn", "residual_gnn"], help="models trained with rel_huber")
    ap.add_argument("--ab-models", nargs="*", default=["residual_cnn"],
                    help="models also trained with train.loss=mse (the loss A/B: same model and seeds)")
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="train.device (cpu, cuda, auto)")
    ap.add_argument("--overrides", nargs="*", default=[],
                    help="more train overrides for every learned run (e.g. train.lr=3e-4 train.empty_weight=0.1)")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicas of every evaluation")
    ap.add_argument("--out", type=Path, default=Path("bench_residual"), help="work folder (data, runs, evaluations)")
    ap.add_argument("--note", default="", help="a sentence put above the tables")
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = ap.parse_args()
    out = args.out
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_file = simulate("gauss_b050", args.train_events, 2, data / f"train_{args.train_events}.root")
    sets = {"test": simulate("gauss_b050", args.test_events, 10507, data / f"test_{args.test_events}.root",
                             "output.oracle=true")}
    if args.jet_events > 0:
        sets["jet"] = simulate("gauss_b050_jet", args.jet_events, 3, data / f"jet_{args.jet_events}.root",
                               "output.oracle=true")
    common = [f"train.threads={args.threads}", f"train.device={args.device}"]
    runs: dict[str, Path] = {"analytic": train("analytic", out / "runs" / "analytic", train_file, 0, 1, common)}
    common += args.overrides
    for model in args.models:
        for seed in args.seeds:
            runs[f"{model} rel_huber seed {seed}"] = train(model, out / "runs" / f"{model}_rel_huber_s{seed}",
                                                           train_file, args.epochs, seed, common)
            if model in args.ab_models:
                runs[f"{model} mse seed {seed}"] = train(model, out / "runs" / f"{model}_mse_s{seed}", train_file,
                                                         args.epochs, seed, [*common, "train.loss=mse"])
    body = [f"Command: `python scripts/bench_residual.py {shlex.join(sys.argv[1:])}` ({machine()}).", ""]
    if args.note:
        body += [args.note, ""]
    body += [f"Training file: {args.train_events} gauss_b050 events (seed 2; 80/10/10 split), epoch cap "
             f"{args.epochs}, seeds {', '.join(map(str, args.seeds))}; every run is evaluated on the independent "
             "sets below. Figures: value [68 % bootstrap interval over events]; every target is checked per seed "
             "on the value (yes / **no**) against the analytic inversion (the physics baseline) on the same set. "
             "The oracle row is the measured floor: each particle's energy from its own track, ECAL and HCAL "
             "measurements alone (docs/METRICS.md), evaluated with the same code.", ""]
    for name, path in sets.items():
        docs = {label: evaluate(run, path, out / "evals" / name / run.name, args.bootstrap)
                for label, run in runs.items()}
        ref = docs["analytic"]
        body += [f"### `{name}` ({ref['dataset']['name']}, {ref['dataset']['n_events']} events)", "",
                 "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        oracle = ref["baselines"]["oracle"]
        if oracle is not None:
            body.append("| " + " | ".join(row("oracle (measured floor)", oracle, ref, None)) + " |")
        for label, doc in docs.items():
            body.append("| " + " | ".join(row(label, doc, ref, doc["training"])) + " |")
        body.append("")
    body += ["### Learning curves", "", *curves({k: v for k, v in runs.items() if k != "analytic"}), ""]
    text = "\n".join(body)
    print(text)
    if not args.no_doc:
        update_section(TITLE, text)


if __name__ == "__main__":
    main()
