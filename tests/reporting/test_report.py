"""The comparison report renders with every referenced file present."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pfgraph.cli import main
from pfgraph.eval.metrics import read_metrics
from pfgraph.eval.output import PredictionWriter
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, RootWriter, make_meta
from pfgraph.reporting.compare import build_report, jet_branch, load_eval, residual_hist
from pfgraph.reporting.plots import fit_curve
from tests.eval.conftest import make_jet_file


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)


def fake_eval(folder: Path, data: Path, model: str, repr_name: str, noise: float, seed: int,
              params: int = 1234, training: dict | None = None, s_factor: float = 1.0) -> Path:
    """A real 'pfgraph evaluate' folder for predictions = truth * (1 + noise * N(0, 1)).

    The predictions file carries the model and training figures in its meta, as evaluate writes
    them; evaluating it against ``data`` makes metrics.json and predictions.root (with jets).
    ``s_factor``: S (the training truth maximum) as a multiple of the data's own largest truth pixel."""
    files = EventFiles(data)
    d = files.read(["event_id", "truth"])
    rng = np.random.default_rng(seed)
    pred = (d["truth"] * (1 + noise * rng.standard_normal(d["truth"].shape))).astype(np.float32)
    source = folder.parent / f"{folder.name}_source.root"
    meta = make_meta("predictions", model={"name": model, "repr": repr_name}, model_names=[model],
                     target_scale=float(d["truth"].max()) * s_factor,
                     training={"parameters": params, "train_time_s": 12.5, "epochs": 3, **(training or {})})
    with PredictionWriter(source, meta) as w:
        w.write(d["event_id"], pred, d["truth"])
    assert main(["evaluate", str(source), "--data", str(data), "--out", str(folder), "--no-plots"]) == 0
    return folder


@pytest.fixture(scope="module")
def jet_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_jet_file(tmp_path_factory.mktemp("reportdata") / "jets.root", 24)


@pytest.fixture()
def evals(tmp_path: Path, jet_data: Path) -> list[Path]:
    return [fake_eval(tmp_path / "e_img", jet_data, "unet_attn", "image", 0.1, 1, params=461_505),
            fake_eval(tmp_path / "e_graph", jet_data, "edgeconv", "graph", 0.05, 2, params=13_729)]


def test_report_html_references_existing_files(tmp_path: Path, evals: list[Path]) -> None:
    assert main(["report", *map(str, evals), "--out", str(tmp_path / "rep")]) == 0
    index = tmp_path / "rep" / "index.html"
    parser = _Refs()
    parser.feed(index.read_text())
    assert len(parser.refs) >= 6
    for ref in parser.refs:
        assert not ref.startswith(("http:", "https:", "//")), ref  # self-contained
        f = tmp_path / "rep" / ref
        assert f.exists() and f.stat().st_size > 1000, ref
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    rows = {r["model"]: r for r in summary["models"]}
    assert set(rows) == {"unet_attn", "edgeconv"}
    assert rows["edgeconv"]["repr"] == "graph"
    # figures from metrics.json: training section, jets, out-of-reach share
    assert rows["unet_attn"]["parameters"] == 461_505 and rows["edgeconv"]["parameters"] == 13_729
    assert rows["edgeconv"]["train_time_s"] == 12.5 and rows["edgeconv"]["epochs"] == 3
    for row in rows.values():
        assert row["jet_efficiency"]["value"] == 1.0 and 0 < row["out_of_reach_fraction"] < 0.1
        assert row["jet_energy_rel_half_width_68"]["value"] is not None and row["residual_fit"]["sigma"] is not None
        # every headline figure carries its 68 % interval
        for key in ("residual_median", "residual_half_width_68", "missed_pixel_fraction", "fake_energy_fraction",
                    "jet_energy_rel_median", "jet_energy_match_rel_median"):
            assert row[key]["lo"] <= row[key]["value"] <= row[key]["hi"], key
    assert rows["edgeconv"]["jet_position_median"]["value"] < rows["unet_attn"]["jet_position_median"]["value"] + 0.5
    # the robust width follows the injected smearing
    assert rows["unet_attn"]["residual_half_width_68"]["value"] == pytest.approx(0.1, rel=0.05)
    assert rows["edgeconv"]["residual_half_width_68"]["value"] == pytest.approx(0.05, rel=0.05)
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "| unet_attn | image |" in md and "68 % bootstrap interval" in md
    html = index.read_text()
    assert "Missed truth pixels" in html and "missed truth pixels" in html and "matched jets" in html


#: A rule text as an evaluation's metrics.json records it (the report shows this text, never its own).
RULE = "the rule recorded by the run"


def _course(val_loss: list[float], half_width: list[float], status: str, cap: int,
            flops: list[float] | None = None) -> dict:
    """A run's recorded course of training, as metrics.json's ``training`` section holds it (a run
    recorded before the trainer counted FLOPs without ``flops``)."""
    n = len(val_loss)
    return {"train_flops": flops[-1] if flops else None, "precision": "bf16" if flops else None,
            **{"epochs": n, "epoch_cap": cap, "status": status, "status_rule": RULE, "wall_time_s": 60.0 * n,
            "best_epoch": int(np.argmin(val_loss)) + 1, "best_val_loss": min(val_loss), "scheduler": "plateau",
            "best_val_half_width": half_width[int(np.argmin(val_loss))],
            "history": {"epoch": list(range(1, n + 1)), "train_loss": [2 * v for v in val_loss],
                        "val_loss": val_loss, "val_half_width": half_width, "lr": [1e-3] * n, "wall_s": [60.0] * n,
                        "train_flops": flops}}}


def test_report_draws_learning_curves_and_the_training_budget(tmp_path: Path, jet_data: Path) -> None:
    evals = [fake_eval(tmp_path / "e_cnn", jet_data, "cnn", "image", 0.1, 1,
                       training=_course([1e-3, 5e-4, 4e-4, 3e-4], [0.5, 0.3, 0.25, 0.2], "still improving", 4,
                                        [1e12, 2e12, 3e12, 4e12])),
             fake_eval(tmp_path / "e_pfn", jet_data, "pfn", "graph", 0.05, 2,
                       training=_course([2e-3, 1e-3, 1e-3, 1.1e-3, 1.2e-3], [0.6, 0.4, 0.41, 0.42, 0.45],
                                        "stopped early", 20))]
    index = build_report(evals, tmp_path / "rep")
    html = index.read_text()
    assert 'src="learning_curves.png"' in html and "Training budget" in html
    png = tmp_path / "rep" / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["figures"][:2] == ["learning_curves.png", "accuracy_vs_compute.png"]
    png = tmp_path / "rep" / "accuracy_vs_compute.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert 'src="accuracy_vs_compute.png"' in html
    assert "Not in the FLOPs panel (trained before the trainer counted FLOPs): pfn." in html
    budget = {r["model"]: r for r in summary["training_budget"]}
    assert budget["cnn"]["status"] == "still improving" and budget["cnn"]["epochs"] == 4
    assert budget["pfn"]["status"] == "stopped early" and budget["pfn"]["epoch_cap"] == 20
    assert budget["pfn"]["wall_time_s"] == 300.0 and budget["pfn"]["best_epoch"] == 2
    assert '<td class="flag">still improving</td>' in html and "<td>stopped early</td>" in html
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "## Training budget" in md and "| pfn | - | 5 | 20 | 300 | stopped early | 2 |" in md
    assert budget["cnn"]["train_flops"] == 4e12 and budget["cnn"]["precision"] == "bf16"
    assert "| plateau | 4e+12 | bf16 |" in md and "| plateau | - | - |" in md
    # the status rule is the one metrics.json records (reporting knows no rule of its own)
    assert summary["status_rule"] == RULE and f"Status rule: {RULE}." in md and f"Status rule: {RULE}." in html


def test_curves_are_the_recorded_histories(tmp_path: Path) -> None:
    """The learning-curve figure plots exactly the recorded points (log y for the loss)."""
    import matplotlib.pyplot as plt

    from pfgraph.reporting import plots

    drawn = {}
    real_save = plots.save

    def keep(fig: object, path: Path) -> Path:
        ax_loss, ax_hw = fig.axes  # type: ignore[attr-defined]
        drawn["loss"] = [tuple(line.get_ydata()) for line in ax_loss.lines]
        drawn["hw"] = [tuple(line.get_ydata()) for line in ax_hw.lines]
        drawn["scale"] = ax_loss.get_yscale()
        return real_save(fig, path)

    plots.save = keep
    try:
        plots.learning_curves({"a": {"epoch": [1, 2, 3], "val_loss": [3.0, 2.0, 2.5], "val_half_width": [0.3, 0.2, None]}},
                              tmp_path / "c.png", {"a": 2})
    finally:
        plots.save = real_save
        plt.close("all")
    assert drawn["loss"][0] == (3.0, 2.0, 2.5) and drawn["loss"][1] == (2.0,)  # the curve, then the best epoch
    assert drawn["hw"][0][:2] == (0.3, 0.2) and np.isnan(drawn["hw"][0][2])
    assert drawn["scale"] == "log"


def test_accuracy_vs_compute_draws_the_recorded_points(tmp_path: Path) -> None:
    """Half-width against the recorded cumulative FLOPs and the running sum of epoch wall seconds,
    log x; a history without FLOPs is left out of that panel only."""
    import matplotlib.pyplot as plt

    from pfgraph.reporting import plots

    drawn = {}
    real_save = plots.save

    def keep(fig: object, path: Path) -> Path:
        ax_f, ax_w = fig.axes  # type: ignore[attr-defined]
        drawn["flops"] = [(tuple(ln.get_xdata()), tuple(ln.get_ydata()), ln.get_label()) for ln in ax_f.lines]
        drawn["wall"] = [(tuple(ln.get_xdata()), tuple(ln.get_ydata()), ln.get_label()) for ln in ax_w.lines]
        drawn["scales"] = (ax_f.get_xscale(), ax_w.get_xscale())
        return real_save(fig, path)

    plots.save = keep
    try:
        _, missing = plots.accuracy_vs_compute(
            {"a": {"epoch": [1, 2, 3], "val_half_width": [0.3, 0.2, 0.25], "wall_s": [10.0, 20.0, 30.0],
                   "train_flops": [1e9, 2e9, 3e9]},
             "old": {"epoch": [1, 2], "val_half_width": [0.5, 0.4], "wall_s": [5.0, 5.0], "train_flops": None}},
            tmp_path / "c.png", {"a": 2})
    finally:
        plots.save = real_save
        plt.close("all")
    assert missing == ["old"]
    assert drawn["flops"][0] == ((1e9, 2e9, 3e9), (0.3, 0.2, 0.25), "a") and drawn["flops"][1][:2] == ((2e9,), (0.2,))
    assert len(drawn["flops"]) == 2  # 'old' has no FLOPs
    assert drawn["wall"][0][:2] == ((10.0, 30.0, 60.0), (0.3, 0.2, 0.25))  # cumulative seconds
    assert drawn["wall"][2][:2] == ((5.0, 10.0), (0.5, 0.4)) and drawn["wall"][2][2] == "old"
    assert drawn["scales"] == ("log", "log")


def test_report_jet_columns_are_the_evaluations_figures(tmp_path: Path, evals: list[Path]) -> None:
    """One definition per figure: the report's jet cells and histograms are the evaluation's own numbers."""
    build_report(evals, tmp_path / "rep")
    rows = {r["model"]: r for r in json.loads((tmp_path / "rep" / "summary.json").read_text())["models"]}
    for folder in evals:
        doc = read_metrics(folder / "metrics.json")
        row = rows[doc["model"]["name"]]
        jets = doc["jets"]
        assert row["jet_energy_rel_median"]["value"] == jets["energy_rel"]["robust"]["median"]
        assert row["jet_energy_rel_half_width_68"]["value"] == jets["energy_rel"]["robust"]["half_width_68"]
        assert row["jet_energy_match_rel_median"]["value"] == jets["energy_match_rel"]["robust"]["median"]
        assert row["jet_position_median"]["value"] == jets["position"]["robust"]["median"]
        assert row["residual_half_width_68"]["value"] == doc["energy"]["residual"]["robust"]["half_width_68"]
        # the histograms the report draws hold exactly the values the evaluation summarised
        run = load_eval(folder)
        for branch, section in (("de_jet_rel", "energy_rel"), ("de_match_rel", "energy_match_rel"),
                                ("d_jet", "position")):
            values = jet_branch(run, branch)
            assert values.size == jets[section]["robust"]["n"]
            assert np.median(values) == pytest.approx(jets[section]["robust"]["median"], rel=1e-6, abs=1e-7)
        # the two jet-energy definitions really differ (not one number under two names)
        assert not np.allclose(jet_branch(run, "de_jet_rel"), jet_branch(run, "de_match_rel"))


def test_fit_curve_is_drawn_on_the_normalisation_of_its_histogram(tmp_path: Path, evals: list[Path]) -> None:
    run = load_eval(evals[0])
    edges, counts, fitted = residual_hist(run)
    fit = run.metrics["energy"]["residual"]["fit"]
    assert fit["status"] == "ok" and fitted is not None and fitted.sum() <= counts.sum()
    entries = fitted.sum()
    lo, hi = fit["window"]
    inside = (edges[:-1] >= lo - 1e-9) & (edges[1:] <= hi + 1e-9)
    hist_integral = fitted[inside].sum() / entries
    x = np.linspace(edges[:-1][inside][0], edges[1:][inside][-1], 20001)
    curve_integral = float(np.sum(fit_curve(fit, entries, x)) * (x[1] - x[0]))
    assert curve_integral == pytest.approx(hist_integral, rel=0.03)
    # and the curve's peak sits on the histogram's peak (the demo report's curve was 3x off)
    density = fitted / (entries * np.diff(edges))
    peak = fit_curve(fit, entries, np.array([fit["mu"]]))[0]
    assert peak == pytest.approx(density[inside].max(), rel=0.25)


def test_report_bad_input_is_one_line(tmp_path: Path, evals: list[Path], capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pfgraph: error:") and "metrics.json" in err and "\n" not in err
    (evals[0] / "predictions.root").write_bytes(b"not root at all")
    with pytest.raises(Exception, match="corrupt or unreadable ROOT file"):
        load_eval(evals[0])


def test_report_refuses_other_grid_size(tmp_path: Path, jet_data: Path) -> None:
    folder = fake_eval(tmp_path / "e", jet_data, "mlp", "image", 0.1, 3)
    with RootWriter(folder / "predictions.root", make_meta("predictions")) as w:
        img = np.dtype((np.float32, (28, 28)))
        w.tree(schema.PREDICTIONS_TREE, {"event_id": np.int64, "pred": img, "truth": img})
        w.extend(schema.PREDICTIONS_TREE, {"event_id": np.arange(2), "pred": np.zeros((2, 28, 28), np.float32),
                                           "truth": np.zeros((2, 28, 28), np.float32)})
    with pytest.raises(Exception, match="another grid size"):
        build_report([folder], tmp_path / "r")


def test_report_puts_the_paper_metric_on_one_s(tmp_path: Path, jet_data: Path) -> None:
    """Two models with the same errors, one trained on a file with a 20x larger S: the report shows the
    same dE/S for both (on the S most models share) and says which one it rescaled."""
    same = [fake_eval(tmp_path / "a", jet_data, "cnn", "image", 0.1, 1),
            fake_eval(tmp_path / "b", jet_data, "cnn3d", "image", 0.1, 2),
            fake_eval(tmp_path / "c", jet_data, "calibrated", "image", 0.1, 1, s_factor=20.0)]
    own = read_metrics(same[2] / "metrics.json")["headline"]["figures"]["abs_norm_half_width_68"]["value"]
    build_report(same, tmp_path / "rep")
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    width = {row["model"]: row["abs_norm_half_width_68"]["value"] for row in summary["models"]}
    assert own == pytest.approx(width["cnn"] / 20, rel=0.05)  # as evaluated, on its own S
    assert width["calibrated"] == pytest.approx(width["cnn"], rel=0.05)  # on one S
    assert summary["norm_rescaled_from"] == {"calibrated": pytest.approx(20 * summary["norm_scale"])}
    assert "calibrated" in (tmp_path / "rep" / "summary.md").read_text().split("on one S")[1]


def test_unique_labels_use_the_shortest_telling_folder_tail(tmp_path: Path) -> None:
    from pfgraph.reporting.compare import unique_labels

    folders = [tmp_path / "evals/jet/calibrated/seed1", tmp_path / "evals/jet/calibrated_tail_flat/seed1",
               tmp_path / "evals/jet/cnn/seed1", tmp_path / "evals/jet/cnn/seed2", tmp_path / "evals/jet/pfn/seed1"]
    names = ["calibrated", "calibrated", "cnn", "cnn", "pfn"]
    assert unique_labels(names, folders) == [
        "calibrated (calibrated/seed1)", "calibrated (calibrated_tail_flat/seed1)", "cnn (seed1)", "cnn (seed2)", "pfn"]
    twice = unique_labels(["cnn", "cnn"], [folders[2], folders[2]])
    assert len(set(twice)) == 2


def test_two_configurations_of_one_model_stay_apart_in_the_report(tmp_path: Path, jet_data: Path) -> None:
    """A study's two configurations of one model (same model name, same seed, different folders) were
    both labelled 'calibrated (seed1)': one overwrote the other in the plots' series. Each keeps a row."""
    folders = [fake_eval(tmp_path / "evals" / label / "seed1", jet_data, "calibrated", "image", noise, 1)
               for label, noise in (("calibrated", 0.05), ("calibrated_tail_flat", 0.2))]
    build_report(folders, tmp_path / "rep")
    rows = json.loads((tmp_path / "rep" / "summary.json").read_text())["models"]
    names = [row["model"] for row in rows]
    assert names == ["calibrated (calibrated/seed1)", "calibrated (calibrated_tail_flat/seed1)"]
    widths = [row["residual_half_width_68"]["value"] for row in rows]
    assert widths[1] > 2 * widths[0]  # each row has its own evaluation's figures


def test_seeds_are_averaged_within_a_configuration_only(tmp_path: Path, jet_data: Path) -> None:
    """The seed-spread table averaged every evaluation of a model name: a study's two configurations of
    calibrated came out as one 'calibrated' mean of both. Each configuration has its own mean now."""
    from pfgraph.reporting.compare import seed_group

    assert seed_group("cnn", "cnn (seed1)") == "cnn"
    assert seed_group("calibrated", "calibrated (calibrated_tail_flat/seed2)") == "calibrated (calibrated_tail_flat)"
    assert seed_group("pfn", "pfn") == "pfn"
    folders = [fake_eval(tmp_path / "evals" / label / f"seed{seed}", jet_data, "calibrated", "image", noise, seed,
                         training={"seed": seed})
               for label, noise in (("calibrated", 0.05), ("calibrated_tail_flat", 0.2)) for seed in (1, 2)]
    build_report(folders, tmp_path / "rep")
    spread = json.loads((tmp_path / "rep" / "summary.json").read_text())["seed_spread"]
    means = {e["model"]: e["figures"]["residual_half_width_68"]["mean"] for e in spread}
    assert set(means) == {"calibrated (calibrated)", "calibrated (calibrated_tail_flat)"}
    assert means["calibrated (calibrated_tail_flat)"] > 2 * means["calibrated (calibrated)"]


def test_oracle_row_beside_the_models(tmp_path: Path) -> None:
    """On a data file with the oracle image, the report shows the oracle's figures (metrics.json's
    baselines.oracle, the same for every evaluation of the file) as one more row."""
    from pfgraph.reporting.compare import ORACLE_ROW

    data = make_jet_file(tmp_path / "oracle_jets.root", 10, 5, "output.oracle=true")
    folders = [fake_eval(tmp_path / name, data, name, "image", noise, seed)
               for name, noise, seed in (("a", 0.05, 1), ("b", 0.2, 2))]
    oracle = read_metrics(folders[0] / "metrics.json")["baselines"]["oracle"]
    other = read_metrics(folders[1] / "metrics.json")["baselines"]["oracle"]
    assert oracle["headline"]["figures"] == other["headline"]["figures"] and oracle["energy"] == other["energy"]
    build_report(folders, tmp_path / "report")
    rows = {r["model"]: r for r in json.loads((tmp_path / "report" / "summary.json").read_text())["models"]}
    assert set(rows) == {"a", "b", ORACLE_ROW}
    want = oracle["headline"]["figures"]["residual_half_width_68"]
    assert rows[ORACLE_ROW]["residual_half_width_68"] == want and rows[ORACLE_ROW]["jet_efficiency"]["value"] is not None
    assert ORACLE_ROW in (tmp_path / "report" / "summary.md").read_text()
    assert ORACLE_ROW in (tmp_path / "report" / "index.html").read_text()
