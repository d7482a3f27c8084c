"""Run a study: its steps, their dependencies, the ledger, resume.

A study (:mod:`pfgraph.study.config`) becomes a list of steps, each with the steps it needs:

* ``simulate:<dataset>`` -> ``data/<dataset>.root``
* ``train:<model>:<seed>`` (needs the simulation of its training set) -> ``runs/<model>/seed<k>/``
* ``evaluate:<model>:<seed>:<dataset>`` (needs that training and that simulation) ->
  ``evals/<dataset>/<model>/seed<k>/``
* ``report:<dataset>`` (needs every evaluation on it) -> ``reports/<dataset>/`` (or the study's
  ``report_dirs`` entry for it: the demo's ``report/``)
* ``results`` (needs every report) -> ``RESULTS.md``

Every step calls the public stage functions (:func:`pfgraph.simulate`, :func:`pfgraph.train`,
:func:`pfgraph.evaluate`, :func:`pfgraph.report`) and writes its own ledger file
``steps/<id>.json`` (atomically): status, attempts, wall seconds summed over attempts (an
interrupted attempt records its seconds too; a running step rewrites its ledger every
:data:`HEARTBEAT_S` seconds, so an attempt killed outright counts up to its last beat), when it
finished and on which machine. Steps that
run in parallel (a batch system's job array) therefore never write the same file; the results
step reads them all.

Resume: a data file is kept when it is complete and was generated with the same config; a
training resumes from its ``checkpoint_last.pt`` (``pfgraph.train`` does that); an evaluation is
skipped when its ``manifest.json`` names the run's current best checkpoint (same SHA-256) and the
study's evaluation settings are unchanged; reports and RESULTS.md are always rewritten (cheap).

Resume on another machine: a study folder is worth keeping in version control without its heavy
files (the repository's ``.gitignore`` leaves out ``data/``, checkpoints, ``predictions.root`` and
plots). Restored there, the simulations are redone (seeded: the same events), a finished
training counts as done while its best checkpoint is present or every evaluation of it is current,
and an evaluation is current when its manifest names the checkpoint SHA-256 the run's
``train_summary.json`` recorded (the checkpoint itself may be absent). A training whose
checkpoints are gone while an evaluation of it is still to do starts again from scratch (its
ledger keeps the seconds already spent).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pfgraph.errors import DataError, PfgraphError
from pfgraph.study.config import ModelSpec, StudyConfig, study_to_dict
from pfgraph.study.plan import Step, plan_steps
from pfgraph.utils.atomic import atomic_write_text

LEDGER_DIR = "steps"
STUDY_COPY = "study.yaml"
RESULTS = "RESULTS.md"
HEARTBEAT_S = 30.0
"""How often a running step's ledger records the seconds spent so far, so that an attempt killed
without a signal it can handle (SIGKILL at a session's end) still counts up to its last beat."""


def ledger_name(step_id: str) -> str:
    """The ledger file name of a step (``train:cnn:1`` -> ``train:cnn:1.json``)."""
    return f"{step_id}.json"


class Study:
    """A study configuration bound to its output folder."""

    def __init__(self, cfg: StudyConfig, out: str | Path, source: str | Path | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.source = Path(source) if source is not None else None

    # ---------------------------------------------------------------- layout
    def data_path(self, ds: str) -> Path:
        """The event file of dataset ``ds``."""
        return self.out / "data" / f"{ds}.root"

    def run_dir(self, model: str, seed: int) -> Path:
        """The run folder of (model, seed)."""
        return self.out / "runs" / model / f"seed{seed}"

    def eval_dir(self, ds: str, model: str, seed: int) -> Path:
        """The evaluation folder of (model, seed) on dataset ``ds``."""
        return self.out / "evals" / ds / model / f"seed{seed}"

    def report_dir(self, ds: str) -> Path:
        """The comparison report of dataset ``ds``."""
        return self.out / self.cfg.report_dirs.get(ds, f"reports/{ds}")

    def ledger_path(self, step_id: str) -> Path:
        """The ledger file of a step."""
        return self.out / LEDGER_DIR / ledger_name(step_id)

    # ---------------------------------------------------------------- steps
    def steps(self) -> list[Step]:
        """Every step in an order that respects the dependencies (each training followed by its evaluations)."""
        return plan_steps(self.cfg)

    def step(self, step_id: str) -> Step:
        """The step ``step_id`` (one clear line when the study has none)."""
        from pfgraph.config import did_you_mean

        steps = {s.id: s for s in self.steps()}
        if step_id not in steps:
            raise PfgraphError(f"{self.source or self.cfg.name}: no step '{step_id}'{did_you_mean(step_id, steps)} "
                               "(--list shows them)")
        return steps[step_id]

    def command(self, step_id: str | None = None) -> str:
        """The command that runs the study (or one step of it) alone."""
        src = str(self.source) if self.source is not None else f"{self.out}/{STUDY_COPY}"
        cmd = ["pfgraph", "study", src, "--out", str(self.out)]
        if step_id is not None:
            cmd += ["--only", step_id]
        return shlex.join(cmd)

    # ---------------------------------------------------------------- keys: what a step's result depends on
    def _sim_config(self, ds: str) -> Any:
        from pfgraph.config import load_config, resolve_config_path
        from pfgraph.sim.detector import SimConfig

        spec = self.cfg.datasets[ds]
        overrides = list(spec.overrides)
        if spec.events is not None:
            overrides.append(f"events={spec.events}")
        if spec.seed is not None:
            overrides.append(f"seed={spec.seed}")
        return load_config(SimConfig, resolve_config_path(spec.sim, "sim"), overrides)

    def key(self, step: Step) -> str:
        """A hash of the settings a step's result depends on (a changed study reruns the step)."""
        cfg = self.cfg
        what: dict[str, Any] = {"kind": step.kind}
        if step.kind == "simulate":
            from pfgraph.config import to_dict

            what["sim"] = to_dict(self._sim_config(str(step.dataset)))
        elif step.kind in ("train", "evaluate"):
            m = cfg.model(str(step.model))
            what["train"] = {"model": m.model, "repr": m.repr, "epochs": cfg.epochs(m), "seed": step.seed,
                             "overrides": cfg.overrides(m), "config": cfg.training.config,
                             "batch_size": cfg.training.batch_size, "max_events": cfg.training.max_events,
                             "data": cfg.train_set(m)}
            if step.kind == "evaluate":
                what["evaluate"] = {**study_to_dict(cfg)["evaluation"], "data": step.dataset}
        text = json.dumps(what, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---------------------------------------------------------------- ledger
    def read_ledger(self, step_id: str) -> dict[str, Any] | None:
        """The step's ledger record (None when it never ran or the file is unreadable)."""
        try:
            doc = json.loads(self.ledger_path(step_id).read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _write_ledger(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.ledger_path(record["step"]), json.dumps(record, indent=2) + "\n")

    def is_done(self, step: Step) -> bool:
        """True when the step's outputs are in place and current (see the module docstring)."""
        rec = self.read_ledger(step.id)
        ledger_ok = rec is not None and rec.get("status") == "done" and rec.get("key") == self.key(step)
        if step.kind == "simulate":
            return self._data_current(str(step.dataset)) is True
        if step.kind == "train":
            return ledger_ok and self._trained(step)
        if step.kind == "evaluate":
            return self._evaluation_current(step) and (rec is None or rec.get("key") == self.key(step))
        return ledger_ok  # report, results: done once written (they are rewritten on every full run)

    def _data_current(self, ds: str) -> bool | str:
        """True when the data file is complete and generated with the dataset's config; False when
        absent; a reason (str) when a file is there but was made otherwise."""
        from pfgraph.config import to_dict
        from pfgraph.io.root import EventFiles

        path = self.data_path(ds)
        if not path.exists():
            return False
        want = to_dict(self._sim_config(ds))
        try:
            files = EventFiles(path)
        except PfgraphError as exc:
            return f"unreadable ({exc})"
        meta = files.meta.get("config")
        if isinstance(meta, dict) and meta != want:
            # a file written before a config key existed holds that key's default: fill the
            # defaults in before comparing, so an added key (at its default) is no difference
            from pfgraph.config import from_dict
            from pfgraph.sim.detector import SimConfig

            try:
                meta = to_dict(from_dict(SimConfig, meta))
            except PfgraphError:
                pass
        if meta != want:
            keys = sorted(k for k in set(want) | set(meta or {}) if (meta or {}).get(k) != want.get(k))
            return f"generated with another config (differs in: {', '.join(keys[:4]) or '?'})"
        if files.num_events != want.get("events"):
            return f"holds {files.num_events} events, the study asks for {want.get('events')}"
        return True

    def best_sha256(self, model: str, seed: int) -> str | None:
        """The SHA-256 of the run's best checkpoint: of the file when it is here, otherwise the one
        its ``train_summary.json`` recorded (a study folder restored without checkpoints)."""
        from pfgraph.training.run_folder import BEST, file_sha256, read_summary

        run = self.run_dir(model, seed)
        if (run / BEST).exists():
            return file_sha256(run / BEST)
        sha = (read_summary(run) or {}).get("checkpoint_sha256")
        return sha if isinstance(sha, str) and sha else None

    def _trained(self, step: Step) -> bool:
        """The training's outputs are in place: its summary, and its best checkpoint or, without
        it, every evaluation of it current (nothing left that needs the weights)."""
        from pfgraph.training.run_folder import BEST, SUMMARY

        run = self.run_dir(str(step.model), int(step.seed or 0))
        if not (run / SUMMARY).exists():
            return False
        if (run / BEST).exists():
            return True
        evals = [s for s in self.steps() if s.kind == "evaluate" and s.model == step.model and s.seed == step.seed]
        return all(self._evaluation_current(s) for s in evals)

    def _evaluation_current(self, step: Step) -> bool:
        from pfgraph.eval.folder import read_manifest

        folder = self.eval_dir(str(step.dataset), str(step.model), int(step.seed or 0))
        sha = self.best_sha256(str(step.model), int(step.seed or 0))
        if not (folder / "manifest.json").exists() or sha is None:
            return False
        try:
            manifest = read_manifest(folder)
        except PfgraphError:
            return False
        return (manifest.get("model") or {}).get("checkpoint_sha256") == sha

    # ---------------------------------------------------------------- running
    def write_copy(self) -> None:
        """Write the resolved study into the output folder (``study.yaml``); never over the study
        file being read (an input is never an output)."""
        from pfgraph.utils.ownership import same_file

        if self.source is not None and self.source.is_file() and same_file(self.source, self.out / STUDY_COPY):
            return
        text = f"# resolved copy of {self.source or 'the study'}, written by pfgraph study\n"
        text += yaml.safe_dump(study_to_dict(self.cfg), sort_keys=False)
        atomic_write_text(self.out / STUDY_COPY, text)

    def pending(self, only: Sequence[str] | None = None) -> list[Step]:
        """The steps a run would execute: ``only`` as given, otherwise every step not done
        (report and results always)."""
        if only:
            return [self.step(s) for s in only]
        return [s for s in self.steps() if s.kind in ("report", "results") or not self.is_done(s)]

    def check_needs(self, step: Step, also_running: Iterable[str] = ()) -> None:
        """One clear line when a step's dependency is not done (and not run before it in this call)."""
        ahead = set(also_running)
        by_id = {s.id: s for s in self.steps()}
        for need in step.needs:
            if need in ahead:
                continue
            if not self.is_done(by_id[need]):
                raise PfgraphError(f"{self.out}: step {step.id} needs {need}, which is not done; run it first "
                                   f"({self.command(need)}) or run the whole study ({self.command()})")

    def run(self, only: Sequence[str] | None = None, dist: Any = None,
            log: Callable[[str], None] = print) -> list[Step]:
        """Run the steps in dependency order (``only``: those steps, refused while a dependency is
        not done); returns the steps run.

        Whether a step is done is decided just before it would run, so an evaluation whose training
        continued in this same call (a raised epoch cap) is evaluated again. Steps already done are
        skipped (also under ``only``: a resubmitted batch job does nothing); report and results
        always run.
        """
        main = dist is None or dist.is_main
        steps = self.steps()
        if only:
            order = {s.id: i for i, s in enumerate(steps)}
            steps = sorted((self.step(s) for s in dict.fromkeys(only)), key=lambda s: order[s.id])
            before: list[str] = []
            for s in steps:
                self.check_needs(s, before)
                before.append(s.id)
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.write_copy()
        ran: list[Step] = []
        for i, s in enumerate(steps, 1):
            if s.kind not in ("report", "results") and self.is_done(s):
                if only and main:
                    log(f"study {self.cfg.name}: {s.id} is done; skipped")
                continue
            if main:
                log(f"study {self.cfg.name}: step {i}/{len(steps)} {s.id}")
                log(f"$ {self.command(s.id)}")  # the step alone, as a user (or a batch job) reruns it
            self.run_step(s, dist=dist)
            ran.append(s)
        return ran

    def run_step(self, step: Step, dist: Any = None) -> None:
        """Run one step, recording the attempt in its ledger (rank 0 only writes)."""
        main = dist is None or dist.is_main
        rec = (self.read_ledger(step.id) or {}) if main else {}
        attempts = int(rec.get("attempts", 0)) + 1
        seconds = float(rec.get("seconds", 0.0))
        base = {"step": step.id, "kind": step.kind, "needs": step.needs, "key": self.key(step),
                "attempts": attempts, "attempt_seconds": list(rec.get("attempt_seconds", [])),
                "machine": machine(), "processes": dist.world if dist is not None else 1, "pid": os.getpid(),
                "started": _now()}
        t0 = time.perf_counter()
        halt_beat = self._heartbeat(base, seconds, t0) if main else None
        status, error = "failed", None
        try:
            getattr(self, f"_run_{step.kind}")(step, dist)
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        finally:
            if halt_beat is not None:
                halt_beat()
            dt = time.perf_counter() - t0
            if main:
                self._write_ledger({**base, "status": status, "error": error, "seconds": round(seconds + dt, 3),
                                    "attempt_seconds": [*base["attempt_seconds"], round(dt, 3)],
                                    "finished": _now()})

    def _heartbeat(self, base: dict[str, Any], seconds: float, t0: float) -> Callable[[], None]:
        """Write the "running" ledger now and every :data:`HEARTBEAT_S` seconds with the attempt's
        seconds so far (in ``seconds`` and as the last ``attempt_seconds``); returns the function
        that stops the beat (it returns once no beat can write any more)."""
        stop = threading.Event()

        def write() -> None:
            dt = round(time.perf_counter() - t0, 3)
            self._write_ledger({**base, "status": "running", "seconds": round(seconds + dt, 3),
                                "attempt_seconds": [*base["attempt_seconds"], dt], "heartbeat": _now()})

        def loop() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    write()
                except (OSError, PfgraphError):  # a full disk: the final record says what happened
                    pass

        write()
        thread = threading.Thread(target=loop, name=f"ledger {base['step']}", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join()

        return halt

    # ---------------------------------------------------------------- the five kinds
    def _run_simulate(self, step: Step, dist: Any) -> None:
        import pfgraph

        ds = str(step.dataset)
        state = self._data_current(ds)
        if state is True:
            print(f"study: {self.data_path(ds)} is complete and current; kept")
            return
        if isinstance(state, str):
            raise DataError(f"{state}; remove it (and the runs trained on it) or choose another --out",
                            path=self.data_path(ds))
        spec = self.cfg.datasets[ds]
        pfgraph.simulate(spec.sim, self.data_path(ds), events=spec.events, seed=spec.seed,
                         overrides=spec.overrides)

    def _run_train(self, step: Step, dist: Any) -> None:
        import pfgraph

        cfg = self.cfg
        m: ModelSpec = cfg.model(str(step.model))
        if dist is None or dist.is_main:  # one rank clears; the others find no checkpoint either way
            self._drop_unresumable(self.run_dir(m.label, int(step.seed or 0)))
        result = pfgraph.train(m.model, self.run_dir(m.label, int(step.seed or 0)), self.data_path(cfg.train_set(m)),
                               repr=m.repr, config=cfg.training.config, epochs=cfg.epochs(m),
                               max_events=cfg.training.max_events, batch_size=cfg.training.batch_size,
                               device=cfg.training.device, seed=step.seed, overrides=cfg.overrides(m), dist=dist)
        if dist is None or dist.is_main:
            print(result.summary_line())

    def _drop_unresumable(self, run: Path) -> None:
        """Remove the outputs of a training whose checkpoints are gone (a study folder restored
        without them, the training finished or not): nothing to resume from, and a new run must
        not inherit its learning curve. Only the run folder's own file names go."""
        from pfgraph.training.run_folder import LAST, OUTPUTS

        left = [name for name in OUTPUTS if (run / name).exists()]
        if (run / LAST).exists() or not left:
            return
        print(f"study: {run} has no checkpoint to resume from (restored without it); training it again")
        for name in left:
            (run / name).unlink(missing_ok=True)

    def _run_evaluate(self, step: Step, dist: Any) -> None:
        import pfgraph

        e = self.cfg.evaluation
        ev = pfgraph.evaluate(self.run_dir(str(step.model), int(step.seed or 0)), self.data_path(str(step.dataset)),
                              self.eval_dir(str(step.dataset), str(step.model), int(step.seed or 0)),
                              bootstrap=e.bootstrap, bootstrap_seed=e.bootstrap_seed, device=e.device,
                              batch_size=e.batch_size, jet_backend=e.jet_backend, plots=e.plots)
        print(ev.summary)

    def _run_report(self, step: Step, dist: Any) -> None:
        import pfgraph

        by_id = {s.id: s for s in self.steps()}
        folders = [self.eval_dir(str(by_id[n].dataset), str(by_id[n].model), int(by_id[n].seed or 0))
                   for n in step.needs]
        pfgraph.report([f for f in folders if (f / "manifest.json").exists()], self.report_dir(str(step.dataset)),
                       metrics_only_ok=True)

    def _run_results(self, step: Step, dist: Any) -> None:
        from pfgraph.study.results import write_results

        path = write_results(self.out)
        print(f"study: {path}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine() -> str:
    """One line naming the machine a step ran on: host, cores, GPU."""
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - the description is best effort
        pass
    return f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}"


def step_table(study: Study) -> list[dict[str, Any]]:
    """Every step with its dependencies, whether it is done, and the command that runs it alone."""
    return [{"id": s.id, "kind": s.kind, "needs": s.needs, "done": study.is_done(s), "command": study.command(s.id)}
            for s in study.steps()]
