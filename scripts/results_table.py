"""docs/RESULTS.md from a recorded ``scripts/reproduce_paper.sh`` run, never from typed-in numbers.

    python scripts/results_table.py RUN_DIR [--out docs/RESULTS.md] [--keep docs/results]

Reads ``RUN_DIR/reproduce.log`` (every invocation: command, start, finish) and every
``RUN_DIR/evals/<test set>/<model>/metrics.json``; writes the table of each test set, the
paper's qualitative claims and DESIGN §6's quality targets beside the measured figures (each
marked agrees / disagrees / inconclusive from the 68 % bootstrap intervals of the figures: a
difference counts only where the intervals do not overlap), and copies the metrics documents and the log under
``--keep`` so that every number in the page can be traced back to a file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uproot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pfgraph.eval.bootstrap import verdict  # noqa: E402
from pfgraph.eval.metrics import read_metrics  # noqa: E402
from pfgraph.reporting.compare import metric  # noqa: E402
from pfgraph.utils.atomic import atomic_write_text  # noqa: E402
from scripts.benchdoc import machine  # noqa: E402

PAPER = ("mlp", "cnn", "cnn_attn", "cnn3d", "unet", "unet_attn", "rnn")
IMPROVED = {"mlp_plus": "mlp", "cnn_attn_plus": "cnn_attn", "unet_attn_plus": "unet_attn"}
#: The headline figure that ranks models: robust width of the per-pixel residual (lower is better);
#: on the jet set also the robust width of the jet energy deviation (truth-jet pixels).
RANK = "residual_half_width_68"
RANK_JET = "jet_energy_rel_half_width_68"

COLUMNS: list[tuple[str, str, str]] = [  # (header, metrics path, format)
    ("params", "training.parameters", "int"),
    ("epochs", "training.epochs", "int"),
    ("train [s]", "training.train_time_s", ".0f"),
    ("best val loss", "training.best_val_loss", ".3g"),
    ("r: core fit sigma", "energy.residual.fit", "fit"),
    ("r: median", "headline:residual_median", ".3f"),
    ("r: 68% half-width", f"headline:{RANK}", ".3f"),
    ("r: frac abs(r) > 0.5", "headline:residual_tail_fraction", ".3f"),
    ("missed truth pixels", "headline:missed_pixel_fraction", ".3f"),
    ("fake energy", "headline:fake_energy_fraction", ".3f"),
    ("dE/S 68% half-width (paper Eq. 1)", "headline:abs_norm_half_width_68", ".2g"),
]
JET_COLUMNS: list[tuple[str, str, str]] = [
    ("jet eff.", "headline:jet_efficiency", ".3f"),
    ("D median [px]", "headline:jet_position_median", ".2f"),
    ("dE/E median (truth-jet pixels)", "headline:jet_energy_rel_median", ".3f"),
    ("dE/E 68% half-width (truth-jet pixels)", f"headline:{RANK_JET}", ".3f"),
    ("dE/E median (matched jets)", "headline:jet_energy_match_rel_median", ".3f"),
]


@dataclass
class Claim:
    """A qualitative statement and the rule that checks it on the measured figures."""

    source: str
    text: str
    check: Callable[[dict[str, dict[str, Any]]], tuple[bool | str | None, str]]


def fmt(value: Any, how: str) -> str:
    """One table cell: a number, a headline figure ``value [lo, hi]`` or a core fit (flagged when not Gaussian)."""
    if value is None:
        return "-"
    if how == "fit":
        if value.get("status") != "ok" or value.get("sigma") is None:
            return "-"
        text = f"{value['sigma']:.3f} (chi2/ndf {value['chi2_ndf']:.2g})"
        return text if value.get("core_gaussian") is not False else text + " non-Gaussian"
    if isinstance(value, dict):
        if value.get("value") is None:
            return "-"
        text = format(float(value["value"]), how)
        if value.get("lo") is None:
            return text
        return f"{text} [{format(float(value['lo']), how)}, {format(float(value['hi']), how)}]"
    if how == "int":
        return f"{int(value):,}"
    return format(float(value), how)


def cell(doc: dict[str, Any], path: str) -> Any:
    """A metrics value; ``headline:KEY`` is the headline figure (value with its interval)."""
    if path.startswith("headline:"):
        return metric(doc, f"headline.figures.{path.split(':', 1)[1]}")
    return metric(doc, path)


def log_lines(log: Path) -> list[str]:
    """The lines of a log as last displayed: a progress bar redraws itself with carriage returns,
    only its final state is kept (``read_text`` would turn each ``\\r`` into a line)."""
    if not log.exists():
        return []
    return [line.split("\r")[-1] for line in log.read_bytes().decode(errors="replace").split("\n")]


def read_log(run: Path) -> list[dict[str, str]]:
    """Every invocation recorded in ``reproduce.log``: command, start, sizes, finish.

    The script appends to its log and resumes where the previous call stopped, so a study may
    span several calls (one interrupted, or more fields and models added later); each is kept.
    An invocation without a ``# finished`` line was interrupted.
    """
    calls: list[dict[str, str]] = []
    for line in log_lines(run / "reproduce.log"):
        if (at := line.find("# reproduce_paper.sh")) > 0:  # a killed call's last progress bar has no newline
            line = line[at:]
        if line.startswith("# reproduce_paper.sh"):
            calls.append({"command": "scripts/reproduce_paper.sh" + line[len("# reproduce_paper.sh"):].rstrip(),
                          "started": "?", "sizes": "", "finished": "", "seconds": ""})
        elif not calls:
            continue
        elif m := re.match(r"# started (\S+) on \S+: (.*)", line):
            calls[-1]["started"], calls[-1]["sizes"] = m.group(1), m.group(2)
        elif m := re.match(r"# finished (\S+), (\d+) s", line):
            calls[-1]["finished"], calls[-1]["seconds"] = m.group(1), m.group(2)
    return calls


def invocation_lines(calls: Sequence[dict[str, str]]) -> list[str]:
    """Markdown list of the recorded invocations."""
    if not calls:
        return ["- Command: not recorded (no `reproduce.log` in the run folder)"]
    out = [f"- Ran on: {machine()}.",
           f"- {len(calls)} invocation(s) of the script, in order (each resumes from what the previous one left):"]
    for i, c in enumerate(calls, 1):
        end = (f"finished {c['finished']} ({c['seconds']} s)" if c["finished"]
               else "interrupted (no finish line; the next invocation resumed it)")
        out.append(f"  {i}. `{c['command']}`: started {c['started']}, {end}; {c['sizes']}")
    return out


def load_sets(run: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """test set -> model -> metrics document, in the reproduction's model order."""
    sets: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in sorted((run / "evals").glob("*")):
        docs = {p.parent.name: read_metrics(p) for p in sorted(folder.glob("*/metrics.json"))}
        if docs:
            order = [m for m in (*("analytic",), *PAPER, "edgeconv", *IMPROVED) if m in docs]
            sets[folder.name] = {m: docs[m] for m in order + sorted(set(docs) - set(order))}
    return sets


def table(docs: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one test set."""
    jets = any(metric(d, "jets.available") for d in docs.values())
    cols = COLUMNS + (JET_COLUMNS if jets else [])
    head = "| model | repr | " + " | ".join(c[0] for c in cols) + " |\n|---|---|" + "---:|" * len(cols) + "\n"
    rows = "".join(f"| {name} | {metric(d, 'model.repr')} | "
                   + " | ".join(fmt(cell(d, path), how) for _, path, how in cols) + " |\n"
                   for name, d in docs.items())
    return head + rows


def _figure(docs: dict[str, dict[str, Any]], model: str, key: str) -> dict[str, Any] | None:
    """Headline figure ``key`` of ``model`` ({value, lo, hi}), or None when not evaluated."""
    fig = metric(docs[model], f"headline.figures.{key}") if model in docs else None
    return fig if isinstance(fig, dict) and fig.get("value") is not None else None


def _show(fig: dict[str, Any]) -> str:
    return fmt(fig, ".3f")


Verdict = tuple[bool | str | None, str]
INCONCLUSIVE = "inconclusive"


def better(a: str, b: str, key: str = RANK) -> Callable[[dict[str, dict[str, Any]]], Verdict]:
    """Rule: ``a`` is lower than ``b`` on ``key``: agrees if a's 68 % interval lies below b's,
    disagrees if above, inconclusive if they overlap (or a document has no intervals)."""
    def check(docs: dict[str, dict[str, Any]]) -> Verdict:
        fa, fb = _figure(docs, a, key), _figure(docs, b, key)
        if fa is None or fb is None:
            return None, f"{a} or {b} not evaluated"
        text = f"{a} {_show(fa)} vs {b} {_show(fb)}"
        v = verdict(fa, fb)
        return (True if v == "lower" else False if v == "higher" else INCONCLUSIVE), text
    return check


def all_better(models: Sequence[str], than: str, key: str = RANK) -> Callable[[dict[str, dict[str, Any]]], Verdict]:
    """Rule: every one of ``models`` (that was evaluated) is lower than ``than`` (intervals apart);
    disagrees if any is higher, inconclusive if any overlaps."""
    def check(docs: dict[str, dict[str, Any]]) -> Verdict:
        ref = _figure(docs, than, key)
        have = {m: f for m in models if (f := _figure(docs, m, key)) is not None}
        if ref is None or not have:
            return None, f"{than} or the others not evaluated"
        verdicts = {m: verdict(f, ref) for m, f in have.items()}
        text = f"{than} {_show(ref)}; " + ", ".join(f"{m} {_show(f)}" for m, f in have.items())
        worse = [m for m, v in verdicts.items() if v == "higher"]
        unsure = [m for m, v in verdicts.items() if v == INCONCLUSIVE]
        if worse:
            return False, text + f" (worse: {', '.join(worse)})"
        if unsure:
            return INCONCLUSIVE, text + f" (overlapping: {', '.join(unsure)})"
        return True, text
    return check


def within(a: str, others: Sequence[str], tolerance: float, key: str = RANK
           ) -> Callable[[dict[str, dict[str, Any]]], Verdict]:
    """Rule: ``a`` is within ``tolerance`` (relative) of the best of ``others``, or better: the best's
    interval scaled by (1 + tolerance) is compared with a's (agrees if a's lies below it, disagrees if
    above, inconclusive if they overlap)."""
    def check(docs: dict[str, dict[str, Any]]) -> Verdict:
        fa = _figure(docs, a, key)
        vals = {m: f for m in others if (f := _figure(docs, m, key)) is not None}
        if fa is None or not vals:
            return None, f"{a} or the others not evaluated"
        best = min(vals, key=lambda m: vals[m]["value"])
        fb = vals[best]
        scaled = {k: (None if fb[k] is None else fb[k] * (1 + tolerance)) for k in ("value", "lo", "hi")}
        v = verdict(fa, scaled)
        text = f"{a} {_show(fa)} vs best of the others {best} {_show(fb)} (x{1 + tolerance:g})"
        return (True if v == "lower" else False if v == "higher" else INCONCLUSIVE), text
    return check


def best_of(a: str, models: Sequence[str], key: str) -> Callable[[dict[str, dict[str, Any]]], Verdict]:
    """Rule: ``a`` is at least as good as the best of ``models``: disagrees if a's interval lies above
    the best's, agrees if it lies below, inconclusive if they overlap."""
    def check(docs: dict[str, dict[str, Any]]) -> Verdict:
        fa = _figure(docs, a, key)
        vals = {m: f for m in models if m != a and (f := _figure(docs, m, key)) is not None}
        if fa is None or not vals:
            return None, f"{a} or the image models not evaluated"
        best = min(vals, key=lambda m: vals[m]["value"])
        v = verdict(fa, vals[best])
        text = f"{a} {_show(fa)} vs best image model {best} {_show(vals[best])}"
        return (True if v == "lower" else False if v == "higher" else INCONCLUSIVE), text
    return check


PAPER_REF = "arXiv:2410.07250"
CLAIMS = [
    Claim(PAPER_REF, "deep image models (CNN, U-Net, attention and 3D variants) reconstruct the energy image better "
          "than the per-pixel MLP", all_better(("cnn", "cnn_attn", "cnn3d", "unet", "unet_attn"), "mlp")),
    Claim(PAPER_REF, "self-attention improves the CNN", better("cnn_attn", "cnn")),
    Claim(PAPER_REF, "self-attention improves the U-Net", better("unet_attn", "unet")),
    Claim(PAPER_REF, "3D convolutions over the detector layers improve the CNN", better("cnn3d", "cnn")),
    Claim(PAPER_REF + " (v2)", "the ~90k-parameter SE-block CNN matches much larger baselines (within 10 % of the best "
          "of unet, cnn_attn, rnn)", within("cnn", ("unet", "cnn_attn", "rnn"), 0.10)),
    Claim("DESIGN §6", "every learned model beats the analytic physics baseline",
          all_better((*PAPER, "edgeconv", *IMPROVED), "analytic")),
    *[Claim("DESIGN §6", f"the improved {v} beats its paper version {b}", better(v, b)) for v, b in IMPROVED.items()],
]
JET_CLAIMS = [
    Claim("DESIGN §6", "edgeconv is at least as good as the best image model on the jet set (jet energy 68% half-width)",
          best_of("edgeconv", (*PAPER, *IMPROVED), RANK_JET)),
    Claim("DESIGN §6", "edgeconv is at least as good as the best image model on the jet set (per-pixel residual)",
          best_of("edgeconv", (*PAPER, *IMPROVED), RANK)),
]


#: Figures whose spread over training seeds is tabulated.
SEED_FIGURES = (RANK, "residual_median", "missed_pixel_fraction", "fake_energy_fraction", RANK_JET,
                "jet_energy_rel_median")


def seed_table(docs: dict[str, dict[str, Any]]) -> str:
    """Mean and standard deviation over training seeds per model (models with two or more seeds), or ''."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for folder, d in docs.items():
        groups.setdefault(str(metric(d, "model.name") or folder), []).append(d)
    lines = []
    for model, members in groups.items():
        seeds = {metric(d, "training.seed") for d in members} - {None}
        if len(seeds) < 2:
            continue
        cells = []
        for key in SEED_FIGURES:
            vals = [f["value"] for d in members if (f := metric(d, f"headline.figures.{key}")) and f["value"] is not None]
            if len(vals) >= 2:
                mean = sum(vals) / len(vals)
                std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
                cells.append(f"{mean:.3f} +- {std:.3f}")
            else:
                cells.append("-")
        lines.append(f"| {model} | {len(seeds)} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = "| model | seeds | " + " | ".join(SEED_FIGURES) + " |\n|---|---:|" + "---:|" * len(SEED_FIGURES) + "\n"
    return head + "\n".join(lines) + "\n"


def claims_table(docs: dict[str, dict[str, Any]], claims: Sequence[Claim]) -> str:
    """Each claim, its verdict on these figures, and the figures."""
    lines = ["| source | claim | here | figures |", "|---|---|---|---|"]
    for c in claims:
        ok, text = c.check(docs)
        word = ok if isinstance(ok, str) else "not measured" if ok is None else ("agrees" if ok else "disagrees")
        lines.append(f"| {c.source} | {c.text} | **{word}** | {text} |")
    return "\n".join(lines) + "\n"


def jet_extrapolation(run: Path, field: str = "050") -> str | None:
    """How far the jet set reaches beyond the training set, measured on the run's own data files.

    Returns a sentence (or None without the files): the largest truth pixel of the training
    file, and the share of the injected jets' true energy (``jet`` image) that lies in pixels
    whose truth exceeds it, i.e. where every learned model must extrapolate.
    """
    train, jets = run / "data" / f"b{field}.root", run / "data" / f"b{field}_jet.root"
    if not (train.exists() and jets.exists()):
        return None
    smax = 0.0
    for chunk in uproot.iterate(f"{train}:events", ["truth"], step_size=1000, library="np"):
        smax = max(smax, float(chunk["truth"].max(initial=0.0)))
    above = total = 0.0
    events = hot = 0
    for chunk in uproot.iterate(f"{jets}:events", ["truth", "jet"], step_size=1000, library="np"):
        truth, jet = chunk["truth"], chunk["jet"]
        above += float(jet[truth > smax].sum())
        total += float(jet.sum())
        events += len(truth)
        hot += int((truth.reshape(len(truth), -1).max(1) > smax).sum())
    if total <= 0:
        return None
    return (f"The largest truth pixel of the training file `data/b{field}.root` is {smax:.1f} GeV; in the jet "
            f"set {100 * above / total:.0f} % of the injected jets' true energy lies in pixels above it "
            f"({hot} of {events} events have such a pixel). There every learned model extrapolates beyond "
            "its training range (a sigmoid output cannot exceed it at all): read the jet energy deviations "
            "(dE/E) of the learned models against the analytic inversion's with that in mind.")


def build(run: Path, keep: Path) -> str:
    """The text of RESULTS.md; copies the evidence under ``keep``."""
    calls = read_log(run)
    sets = load_sets(run)
    if not sets:
        raise SystemExit(f"results_table: no evaluations under {run}/evals (run scripts/reproduce_paper.sh first)")
    keep_rel = keep.resolve().relative_to(ROOT) if keep.resolve().is_relative_to(ROOT) else keep
    out = [
        "# Results",
        "",
        "Generated by `scripts/results_table.py` from a recorded run of `scripts/reproduce_paper.sh`; "
        "nothing here is typed in by hand. Every figure comes from the metrics documents kept in "
        f"`{keep_rel}/` (one `metrics.json` per model and test set, as `pfgraph evaluate` wrote it) "
        f"beside the run's log (`{keep_rel}/reproduce.log`).",
        "",
        *invocation_lines(calls),
        "",
        "Figures: r = (E_pred - E_true)/E_true per pixel with E_true > 0 (Gaussian core fit and robust "
        "figures); fake energy = predicted energy in pixels without truth, as a fraction of all predicted "
        "energy; jets: anti-kt R = 0.4 on pixels above 0.1 GeV, D = distance of the predicted to the truth "
        "jet axis in pixels, dE/E = jet energy deviation over the truth jet's pixels / truth jet energy "
        "(truth-jet pixels) or the matched jets' own energies (matched jets). Missed truth pixels (predicted "
        "empty, r = -1) are their own figure and are left out of the core fit; a core fit marked "
        "'non-Gaussian' fails the rule chi2/ndf <= 3 and >= 50 % of entries in the window, and is never used "
        "to rank. Figures are value [68 % bootstrap interval over events]; rankings use the robust 68 % "
        "half-width (lower is better), and a claim agrees or disagrees only where the intervals do not "
        "overlap (otherwise: inconclusive; documents written before metrics schema 3 have no intervals, "
        "so every pairwise claim on them is inconclusive).",
        "",
    ]
    for name, docs in sets.items():
        out += [f"## Test set `{name}`", "", table(docs), ""]
        if spread := seed_table(docs):
            out += ["Spread over training seeds (mean +- standard deviation of the figure over the seeds):", "",
                    spread, ""]
        out += ["Claims and targets on this test set:", "",
                claims_table(docs, CLAIMS + (JET_CLAIMS if "jet" in name else []))]
    out += [
        "## Reading these numbers",
        "",
        "The paper trains every model to convergence on 8 000 events (GPU). A run with fewer events or "
        "epochs than that (see the invocations above) compares models at the same, limited training budget: a "
        "ranking that disagrees with the paper may be the budget, not the architecture. The analytic "
        "baseline knows the simulator's formulas exactly, so it is a strong floor in paper mode.",
        "",
    ]
    if (note := jet_extrapolation(run)) is not None:
        out += [note, ""]
    keep.mkdir(parents=True, exist_ok=True)
    for name, docs in sets.items():
        for model in docs:
            dst = keep / name / f"{model}.json"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / "evals" / name / model / "metrics.json", dst)
    if (run / "reproduce.log").exists():
        lines = log_lines(run / "reproduce.log")
        atomic_write_text(keep / "reproduce.log", "\n".join(line for line in lines if line.strip()) + "\n")
    return "\n".join(out)


def main() -> None:
    """Write RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the --out folder of scripts/reproduce_paper.sh")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "RESULTS.md")
    ap.add_argument("--keep", type=Path, default=ROOT / "docs" / "results", help="where the evidence is copied")
    args = ap.parse_args()
    text = build(args.run, args.keep)
    atomic_write_text(args.out, text)
    print(f"results_table: {args.out} from {args.run}")


if __name__ == "__main__":
    main()
