"""Fault injection for issues 16 and 31: inject every fault of their tables into a tiny simulated setup,
run the command line (``python -m pfgraph.cli``) on it and grade what happens.

    PYTHONPATH=. .venv/bin/python scripts/faults.py [--keep] [--only 1,4,7] [--markdown]

Verdicts:

* **GOOD**: the expected behaviour. A failure is one line (``pfgraph: error: ...`` naming the
  file), a non-zero exit and nothing left behind; a fault that is not an error gives the
  correct result.
* **POOR**: it works but fails badly: a traceback, an ``internal error`` line, several lines,
  leftovers, a message that does not name the file or the cause.
* **BAD**: a silently wrong result or a folder that lies (the fault is accepted).
* **SKIP**: the fault cannot be injected here (e.g. no user namespaces for a small tmpfs).

Everything runs in a temporary folder (removed unless ``--keep``) on data of a few dozen
events; the whole table takes a few minutes on two cores. The exit status is 1 if any case is
BAD, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOOD, POOR, BAD, SKIP = "GOOD", "POOR", "BAD", "SKIP"
#: A tiny cnn: same code paths as the paper model, a 64-event epoch takes about a second.
TINY = ("model.encoder=[4,8]", "model.decoder=[4]", "train.threads=1", "train.batch_size=16")
EVENTS = 64


@dataclass
class Result:
    """What one command did."""

    rc: int
    out: str
    err: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.err.splitlines() if line.strip()]


@dataclass
class Verdict:
    """One row of the table."""

    item: int
    case: str
    verdict: str
    note: str


class Lab:
    """The temporary folder, the shared tiny data and runs, and the command runner."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "PFGRAPH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
        self._cache: dict[str, Path] = {}

    # -- running ---------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        """The command line of ``pfgraph ARGS`` with this interpreter and this checkout."""
        return [sys.executable, "-m", "pfgraph.cli", *args]

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        """Run ``pfgraph ARGS`` to completion."""
        t0 = time.perf_counter()
        p = subprocess.run(self.argv(*args), cwd=self.base, env=env or self.env, capture_output=True, text=True,
                           timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)

    def path(self, name: str) -> Path:
        """A fresh path in the lab (its parent exists)."""
        p = self.base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    # -- shared inputs (made once) ---------------------------------------------------------

    def data(self, seed: int = 1, compression: str = "lz4:1", events: int = EVENTS) -> Path:
        """A simulated B=0.5 file."""
        key = f"data-{seed}-{compression}-{events}"
        if key not in self._cache:
            out = self.path(f"data/b050_s{seed}_{compression.replace(':', '')}_{events}.root")
            r = self.cli("simulate", "--config", "gauss_b050", "--events", str(events), "--seed", str(seed),
                         "--out", str(out), "--compression", compression, "--workers", "0")
            if r.rc != 0:
                raise RuntimeError(f"simulate failed: {r.err.strip()}")
            self._cache[key] = out
        return self._cache[key]

    def tampered(self, name: str, branch: str, value: float, split: str = "train") -> Path:
        """A simulated file with one pixel of ``branch`` set to ``value`` in the first event of
        the trainer's ``split`` (default split fractions and seed)."""
        import numpy as np

        from pfgraph.config import load_config, resolve_config_path, to_dict
        from pfgraph.io.root import EventWriter, make_meta
        from pfgraph.sim.detector import SimConfig
        from pfgraph.sim.generate import simulate_batch
        from pfgraph.training.trainer import split_indices

        cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={EVENTS}"])
        batch = simulate_batch(cfg, range(EVENTS))
        event = int(split_indices(EVENTS, [0.8, 0.1, 0.1], 12345)[split][0])
        img = batch[branch][event]
        img[np.unravel_index(int(np.argmax(img)), img.shape)] = value
        out = self.path(f"data/{name}.root")
        meta = make_meta("events", to_dict(cfg), seed=cfg.seed, events=EVENTS, first_event=0, shard=0, shards=1)
        with EventWriter(out, meta) as w:
            w.write(batch)
        return out

    def run(self, name: str = "cnn", *extra: str) -> Path:
        """A tiny cnn trained for one epoch on ``data()``."""
        key = f"run-{name}"
        if key not in self._cache:
            out = self.path(f"runs/{name}")
            r = self.cli("train", "--model", "cnn", "--data", str(self.data()), "--out", str(out), "--epochs", "1",
                         "--device", "cpu", *TINY, *extra)
            if r.rc != 0:
                raise RuntimeError(f"train failed: {r.err.strip()}")
            self._cache[key] = out
        return self._cache[key]

    def evaluation(self, seed: int = 1) -> Path:
        """The tiny run evaluated on ``data(seed)``."""
        key = f"eval-{seed}"
        if key not in self._cache:
            out = self.path(f"evals/cnn_s{seed}")
            r = self.cli("evaluate", str(self.run()), "--data", str(self.data(seed)), "--out", str(out),
                         "--no-plots", "--device", "cpu")
            if r.rc != 0:
                raise RuntimeError(f"evaluate failed: {r.err.strip()}")
            self._cache[key] = out
        return self._cache[key]


# ------------------------------------------------------------------------------ grading


def clean_failure(r: Result, *must: str, leftovers: Sequence[Path] = ()) -> tuple[str, str]:
    """GOOD for one ``pfgraph: error:`` line containing every ``must`` string, a non-zero exit
    and no leftovers; BAD for exit 0; POOR otherwise."""
    lines = r.err_lines
    first = lines[0] if lines else ""
    if r.rc == 0:
        return BAD, f"accepted (exit 0): {(r.out.strip().splitlines() or [''])[-1][:160]}"
    left = [str(p) for p in leftovers if p.exists()]
    problems = []
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    if "Traceback" in r.err or "internal error" in r.err:
        problems.append("traceback/internal error")
    if not first.startswith("pfgraph: error:"):
        problems.append("not a 'pfgraph: error:' line")
    missing = [m for m in must if m not in r.err]
    if missing:
        problems.append(f"message lacks {missing}")
    if left:
        problems.append(f"left behind {left}")
    note = first[:220]
    return (POOR, "; ".join(problems) + f" | {note}") if problems else (GOOD, note)


def temporaries(folder: Path, name: str) -> list[Path]:
    """Hidden temporaries of output ``name`` in ``folder``."""
    return sorted(folder.glob(f".{name}.*"))


def sha_all(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a folder."""
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@contextlib.contextmanager
def small_disk(lab: Lab, size: str) -> Iterator[Callable[..., Result] | None]:
    """A runner whose commands see a ``size`` tmpfs at ``lab.base/full`` (user + mount namespace);
    None where that is impossible."""
    mount = lab.path("full")
    mount.mkdir(exist_ok=True)
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {mount}"],
                           capture_output=True, text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        yield None
        return

    def runner(*args: str, after: str = "") -> Result:
        cmd = " ".join(shlex.quote(a) for a in lab.argv(*args))
        script = (f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mount))} && cd {shlex.quote(str(lab.base))} "
                  f"&& {{ {cmd}; rc=$?; }}; echo \"LEFT:$(ls -A {shlex.quote(str(mount))} | tr '\\n' ' ')\"; exit $rc")
        t0 = time.perf_counter()
        p = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=lab.env, capture_output=True, text=True,
                           timeout=300)
        return Result(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)

    yield runner


def _left(r: Result) -> str:
    m = re.search(r"LEFT:(.*)", r.out)
    return m.group(1).strip() if m else "?"


# ------------------------------------------------------------------------------ the cases


def item1(lab: Lab) -> Iterator[Verdict]:
    """Implausible values: inspect and train refuse them naming file, event, branch, value."""
    huge = lab.tampered("truth_1e30", "truth", 1e30)
    yield Verdict(1, "inspect: truth pixel 1e30 GeV", *clean_failure(lab.cli("inspect", str(huge)), str(huge),
                                                                        "truth", "1e+30"))
    neg = lab.tampered("truth_minus500", "truth", -500.0)
    run = lab.path("runs/neg")
    r = lab.cli("train", "--model", "cnn", "--data", str(neg), "--out", str(run), "--epochs", "1", "--device", "cpu",
                *TINY)
    yield Verdict(1, "train: truth pixel -500 GeV in the training split", *clean_failure(r, str(neg), "-500",
                                                                                         leftovers=[run]))
    # A bit flip in an uncompressed file: one stored float becomes 2.9e29 (no checksum sees it).
    import numpy as np

    from pfgraph.io.root import EventFiles

    plain = lab.data(1, "none")
    image = EventFiles(plain).read(["truth"], 0, 1)["truth"][0]
    raw = bytearray(plain.read_bytes())
    start = raw.find(image.astype(">f4").tobytes())  # event 0's truth image, stored as is
    pos = start + 4 * int(np.argmax(image))
    raw[pos:pos + 4] = np.array([2.9e29], ">f4").tobytes()
    flipped = lab.path("data/bitflip.root")
    flipped.write_bytes(bytes(raw))
    yield Verdict(1, "inspect: bit flip (2.9e29) in a --compression none file",
                  *clean_failure(lab.cli("inspect", str(flipped)), str(flipped), "2.9e+29"))
    val = lab.tampered("val_1e30", "truth", 1e30, split="val")
    run = lab.path("runs/val")
    r = lab.cli("train", "--model", "cnn", "--data", str(val), "--out", str(run), "--epochs", "1", "--device", "cpu",
                *TINY)
    verdict, note = clean_failure(r, str(val), leftovers=[run])
    if "best val loss inf" in r.out:
        verdict, note = BAD, "claims 'best val loss inf -> checkpoint_best.pt'"
    yield Verdict(1, "train: truth 1e30 in the validation split", verdict, note)


def item2(lab: Lab) -> Iterator[Verdict]:
    """Re-evaluating a predictions file against other data with the same event ids."""
    preds = lab.evaluation(1) / "predictions.root"
    out = lab.path("evals/again")
    r = lab.cli("evaluate", str(preds), "--data", str(lab.data(2)), "--out", str(out), "--no-plots")
    yield Verdict(2, "evaluate predictions.root --data OTHER (same ids)", *clean_failure(r, str(preds), leftovers=[out]))


def item3(lab: Lab) -> Iterator[Verdict]:
    """A config path that does not exist must not fall back to a preset."""
    missing = "some/dir/gauss_b000.yaml"
    out = lab.path("data/fallback.root")
    r = lab.cli("simulate", "--config", missing, "--events", "4", "--out", str(out), "--workers", "0")
    yield Verdict(3, "simulate --config some/dir/gauss_b000.yaml (missing)",
                  *clean_failure(r, missing, leftovers=[out]))
    run = lab.path("runs/fallback")
    r = lab.cli("train", "--model", "cnn", "--config", "nowhere/quick.yaml", "--data", str(lab.data()), "--out",
                str(run), "--epochs", "1", "--device", "cpu", *TINY)
    yield Verdict(3, "train --config nowhere/quick.yaml (missing)",
                  *clean_failure(r, "nowhere/quick.yaml", leftovers=[run]))


def item4(lab: Lab) -> Iterator[Verdict]:
    """Mixed evaluation folders and checkpoints in the wrong run folder."""
    a, b = lab.evaluation(1), lab.evaluation(2)
    mixed = lab.path("evals/mixed")
    shutil.copytree(a, mixed)
    shutil.copy(b / "predictions.root", mixed / "predictions.root")
    r = lab.cli("report", str(mixed), "--out", str(lab.path("reports/mixed")))
    yield Verdict(4, "report on a folder whose predictions.root is another evaluation's",
                  *clean_failure(r, str(mixed), "predictions.root"))
    # kill -9 while an evaluation replaces an existing folder
    target = lab.path("evals/killed")
    shutil.copytree(a, target)
    before = sha_all(target)
    proc = subprocess.Popen(lab.argv("evaluate", str(lab.run()), "--data", str(lab.data(2)), "--out", str(target),
                                     "--device", "cpu"), cwd=lab.base, env=lab.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    seen = False
    while time.time() < deadline and proc.poll() is None and not seen:
        seen = any((p / "predictions.root").exists() for p in target.parent.glob(".killed.*")) or (
            (target / "predictions.root").exists() and sha_all(target).get("predictions.root") != before["predictions.root"])
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = sha_all(target)
    rep = lab.cli("report", str(target), "--out", str(lab.path("reports/killed")))
    if after == before and rep.rc == 0:
        yield Verdict(4, "kill -9 while evaluate replaces a folder", GOOD,
                      "the previous evaluation is intact and still reports" + ("" if seen else " (killed early)"))
    elif rep.rc != 0:
        yield Verdict(4, "kill -9 while evaluate replaces a folder", POOR,
                      f"folder changed, report refuses it: {rep.err_lines[:1]}")
    else:
        yield Verdict(4, "kill -9 while evaluate replaces a folder", BAD, "folder changed and report accepts it")
    # a checkpoint copied into another run's folder
    other = lab.run("cnn_small", "model.encoder=[4]")
    swapped = lab.path("runs/swapped")
    shutil.copytree(lab.run(), swapped)
    shutil.copy(other / "checkpoint_best.pt", swapped / "checkpoint_best.pt")
    out = lab.path("evals/swapped")
    r = lab.cli("evaluate", str(swapped), "--data", str(lab.data()), "--out", str(out), "--no-plots", "--device",
                "cpu")
    yield Verdict(4, "evaluate a run folder holding another run's checkpoint",
                  *clean_failure(r, "checkpoint_best.pt", leftovers=[out]))


def item5(lab: Lab) -> Iterator[Verdict]:
    """A report over evaluations of different datasets."""
    out = lab.path("reports/two_datasets")
    r = lab.cli("report", str(lab.evaluation(1)), str(lab.evaluation(2)), "--out", str(out))
    if r.rc == 0:
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
        grouped = isinstance(summary.get("datasets"), (list, dict)) and len(summary["datasets"]) == 2
        yield Verdict(5, "report over evaluations of two datasets", GOOD if grouped else BAD,
                      "grouped by dataset" if grouped else "one table without a word")
        return
    yield Verdict(5, "report over evaluations of two datasets",
                  *clean_failure(r, str(lab.evaluation(1)), str(lab.evaluation(2))))


def item6(lab: Lab) -> Iterator[Verdict]:
    """Disk full during simulate, train and evaluate (a small tmpfs)."""
    full = lab.base / "full"
    cases = [
        ("simulate", "256k", lambda: ("simulate", "--events", "200", "--out", str(full / "d.root"), "--workers", "0")),
        ("train", "64k", lambda: ("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(full / "run"),
                                  "--epochs", "1", "--device", "cpu", *TINY)),
        ("evaluate", "64k", lambda: ("evaluate", str(lab.run()), "--data", str(lab.data()), "--out",
                                     str(full / "eval"), "--device", "cpu", "--no-plots")),
    ]
    for name, size, args in cases:
        argv = args()
        with small_disk(lab, size) as runner:
            if runner is None:
                yield Verdict(6, f"disk full during {name}", SKIP, "no user/mount namespaces for a small tmpfs")
                continue
            r = runner(*argv)
        verdict, note = clean_failure(r, "no space left on device")
        left = _left(r)
        if verdict == GOOD and left:
            verdict, note = POOR, f"left behind: {left} | {note}"
        yield Verdict(6, f"disk full during {name} ({size} tmpfs)", verdict, note)


def _simulate_and_signal(lab: Lab, sig: int, name: str, group: bool = False) -> tuple[Result, list[Path]]:
    """Start a long simulate, send ``sig`` once it writes (to its whole process group with
    ``group``, as Ctrl-C at a terminal does), return what it said and its leftovers."""
    out = lab.path(f"interrupt/{name}.root")
    proc = subprocess.Popen(lab.argv("simulate", "--events", "20000", "--out", str(out)), cwd=lab.base, env=lab.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not temporaries(out.parent, out.name):
        time.sleep(0.05)
    time.sleep(1.0)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        o, e = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        o, e = proc.communicate()
    return Result(proc.returncode, o, e, 0.0), temporaries(out.parent, out.name)


def item7(lab: Lab) -> Iterator[Verdict]:
    """Interrupted simulate: kill -9 leftovers cleaned by the next run, SIGTERM and Ctrl-C clean."""
    _, left = _simulate_and_signal(lab, signal.SIGKILL, "killed")
    out = lab.path("interrupt/killed.root")
    r = lab.cli("simulate", "--events", "8", "--out", str(out), "--workers", "0")
    still = temporaries(out.parent, out.name)
    if r.rc != 0:
        yield Verdict(7, "kill -9 simulate, then run again", POOR, f"the next run failed: {r.err_lines[:1]}")
    elif still:
        yield Verdict(7, "kill -9 simulate, then run again", POOR,
                      f"{len(still)} stale temporaries stay ({', '.join(p.name for p in still[:2])})")
    else:
        yield Verdict(7, "kill -9 simulate, then run again", GOOD,
                      f"{len(left)} temporaries of the killed run removed by the next one")
    for sig, label in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C (SIGINT to the process group)")):
        r, left = _simulate_and_signal(lab, sig, label.split()[0].lower(), group=sig == signal.SIGINT)
        lines = r.err_lines
        if r.rc == 0:
            yield Verdict(7, f"{label} during simulate", BAD, "exit 0")
        elif left or len(lines) != 1 or "Traceback" in r.err:
            yield Verdict(7, f"{label} during simulate", POOR,
                          f"{len(lines)} stderr lines, {len(left)} leftovers | {(lines or [''])[0][:120]}")
        else:
            yield Verdict(7, f"{label} during simulate", GOOD, lines[0][:160])


def item8(lab: Lab) -> Iterator[Verdict]:
    """A failed train leaves no run folder."""
    run = lab.path("runs/never")
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.path("data/missing.root")), "--out", str(run),
                "--epochs", "1", "--device", "cpu", *TINY)
    yield Verdict(8, "train with a missing data file", *clean_failure(r, "missing.root", leftovers=[run]))


def item9(lab: Lab) -> Iterator[Verdict]:
    """Corrupt header bytes of a compressed basket."""
    src = lab.data()
    raw = bytearray(src.read_bytes())
    pos = raw.find(b"L4", 1000)
    raw[pos:pos + 2] = b"QQ"
    bad = lab.path("data/corrupt_header.root")
    bad.write_bytes(bytes(raw))
    yield Verdict(9, "inspect a file with corrupt basket header bytes",
                  *clean_failure(lab.cli("inspect", str(bad)), str(bad), "corrupt or unreadable"))


def item10(lab: Lab) -> Iterator[Verdict]:
    """``pfgraph inspect FILE | head -1`` exits quietly."""
    cmd = " ".join(shlex.quote(a) for a in lab.argv("inspect", str(lab.data()))) + " | head -1"
    p = subprocess.run(["bash", "-c", cmd], cwd=lab.base, env=lab.env, capture_output=True, text=True)
    if "BrokenPipe" in p.stderr or "internal error" in p.stderr or "Traceback" in p.stderr:
        yield Verdict(10, "inspect FILE | head -1", POOR, p.stderr.strip().splitlines()[-1][:160])
    else:
        yield Verdict(10, "inspect FILE | head -1", GOOD, "quiet" if not p.stderr.strip() else p.stderr.strip()[:120])


def item11(lab: Lab) -> Iterator[Verdict]:
    """The override example in ``train --help`` is accepted."""
    help_text = lab.cli("train", "--help").out
    examples = re.findall(r"\b([a-z_]+(?:\.[a-z_]+)+=[^\s,)]+)", help_text)
    if not examples:
        yield Verdict(11, "train --help override example", GOOD, "no key=value example shown")
        return
    run = lab.path("runs/help_example")
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run), "--epochs", "1",
                "--device", "cpu", *TINY, examples[0])
    verdict = GOOD if r.rc == 0 else BAD
    yield Verdict(11, f"train --help example '{examples[0]}'", verdict,
                  "accepted" if r.rc == 0 else (r.err_lines or ["?"])[0][:160])


def item12(lab: Lab) -> Iterator[Verdict]:
    """Checkpoints that do not fit, and unsafe ones."""
    import torch

    run = lab.path("runs/misfit")
    shutil.copytree(lab.run(), run)
    ckpt = torch.load(run / "checkpoint_best.pt", weights_only=True)
    ckpt["config"]["model"]["params"]["encoder"] = [8, 16]
    torch.save(ckpt, run / "checkpoint_best.pt")
    r = lab.cli("evaluate", str(run), "--data", str(lab.data()), "--out", str(lab.path("evals/misfit")),
                "--no-plots", "--device", "cpu")
    yield Verdict(12, "evaluate a checkpoint whose model config does not fit",
                  *clean_failure(r, str(run / "checkpoint_best.pt")))
    unsafe = lab.path("runs/unsafe")
    shutil.copytree(lab.run(), unsafe)
    marker = lab.path("PWNED")

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "pfgraph-checkpoint", "payload": Payload()}, unsafe / "checkpoint_best.pt")
    r = lab.cli("evaluate", str(unsafe), "--data", str(lab.data()), "--out", str(lab.path("evals/unsafe")),
                "--no-plots", "--device", "cpu")
    verdict, note = clean_failure(r, "refused", "code")
    if marker.exists():
        verdict, note = BAD, "the checkpoint ran code"
    yield Verdict(12, "evaluate a checkpoint that would run code", verdict, note)


def item13(lab: Lab) -> Iterator[Verdict]:
    """Default single-file simulate rate (target 2000 events/s; the machine's load matters)."""
    out = lab.path("rate/default.root")
    r = lab.cli("simulate", "--events", "4000", "--out", str(out))
    m = re.search(r"([\d.]+) events/s", r.out)
    if r.rc != 0 or not m:
        yield Verdict(13, "default simulate rate", POOR, f"no rate: {(r.err_lines or [''])[0][:120]}")
        return
    rate = float(m.group(1))
    yield Verdict(13, "default simulate rate (4000 events, one file)", GOOD if rate >= 2000 else POOR,
                  f"{rate:.0f} events/s (target 2000; one run on a possibly loaded machine)")


def item14(lab: Lab) -> Iterator[Verdict]:
    """``simulate --format rntuple`` / ``output.format: rntuple`` and RNTuple from evaluate."""
    out = lab.path("rntuple/b050.root")
    r = lab.cli("simulate", "--events", "8", "--out", str(out), "--workers", "0", "--format", "rntuple")
    ok = r.rc == 0 and out.exists()
    if ok:
        import uproot

        with uproot.open(out) as f:
            ok = f.classnames().get("events;1", f.classnames().get("events")) == "ROOT::RNTuple"
    yield Verdict(14, "simulate --format rntuple", GOOD if ok else BAD,
                  "an RNTuple file" if ok else (r.err_lines or ["?"])[0][:160])
    out2 = lab.path("rntuple/key.root")
    r = lab.cli("simulate", "--events", "8", "--out", str(out2), "--workers", "0", "output.format=rntuple")
    yield Verdict(14, "simulate output.format=rntuple", GOOD if r.rc == 0 else BAD,
                  "accepted" if r.rc == 0 else (r.err_lines or ["?"])[0][:160])
    help_text = lab.cli("evaluate", "--help").out
    yield Verdict(14, "evaluate can write RNTuple", GOOD if "rntuple" in help_text.lower() else BAD,
                  "documented in evaluate --help" if "rntuple" in help_text.lower() else "no RNTuple option")


def item15(lab: Lab) -> Iterator[Verdict]:
    """A study (``pfgraph study``, which replaced ``reproduce_paper.sh``) writes only under its --out (static check)."""
    bad = [f"{p.relative_to(ROOT)}: {line.strip()}" for p in sorted((ROOT / "pfgraph" / "study").glob("*.py"))
           for line in p.read_text().splitlines()
           if re.search(r"[\s\"'(]docs/", line) and not line.strip().startswith("#")]
    yield Verdict(15, "the study runner writes outside --out", GOOD if not bad else BAD,
                  "every output under the study folder" if not bad else f"names docs/: {bad[0][:140]}")


def item16(lab: Lab) -> Iterator[Verdict]:
    """README install notes (static check)."""
    text = (ROOT / "README.md").read_text()
    need = {"how to run pfgraph after make install": r"\.venv/bin/pfgraph|source \.venv/bin/activate",
            "CPU torch elsewhere": r"(?i)cpu (wheel|build)",
            "GPU install": r"(?i)(gpu|cuda)",
            "a C++ compiler for torch-cluster": r"(?i)(c\+\+ compiler|g\+\+)",
            "Python headers for torch-cluster": r"(?i)python[- ]?(3(\.\d+)?-)?(dev\b|headers)|python development headers|Python\.h",
            "make": r"(?i)\bmake\b"}
    missing = [k for k, pat in need.items() if not re.search(pat, text)]
    yield Verdict(16, "README: PATH, CPU/GPU torch, torch-cluster prerequisites", GOOD if not missing else BAD,
                  "all present" if not missing else f"missing: {', '.join(missing)}")


def item17(lab: Lab) -> Iterator[Verdict]:
    """Progress bars stay quiet when stderr is not a terminal."""
    env = {k: v for k, v in lab.env.items() if k != "PFGRAPH_NO_PROGRESS"}
    r = lab.cli("simulate", "--events", "600", "--out", str(lab.path("progress/p.root")), env=env)
    bars = "\r" in r.err or re.search(r"\d+%\|", r.err) or "it/s" in r.err
    yield Verdict(17, "progress bars with stderr redirected", BAD if bars else GOOD,
                  "bars in the redirected stderr" if bars else "quiet")


def item18(lab: Lab) -> Iterator[Verdict]:
    """The demo's documented duration points at a BENCHMARKS 'Demo' section that exists (static)."""
    bench = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    has = re.search(r"(?im)^#+ .*demo", bench)
    yield Verdict(18, "BENCHMARKS has the Demo section the README points to", GOOD if has else BAD,
                  "present" if has else "no Demo section")


def item19(lab: Lab) -> Iterator[Verdict]:
    """BENCHMARKS commands: train has --out, no stale /tmp paths; quick.yaml's claim (static)."""
    bench = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    problems = []
    for line in bench.splitlines():
        if re.search(r"pfgraph(\.cli)? train ", line) and "--out" not in line and not line.rstrip().endswith("\\"):
            problems.append(f"train without --out: {line.strip()[:80]}")
        for p in re.findall(r"(/tmp/[\w./-]+)", line):
            if not Path(p).exists():
                problems.append(f"names {p}")
    quick = (ROOT / "pfgraph" / "presets" / "train" / "quick.yaml").read_text()
    if re.search(r"(?i)demo|smoke", quick):
        users = subprocess.run(["grep", "-rl", "quick", "pfgraph", "tests", "scripts", "Makefile"], cwd=ROOT,
                               capture_output=True, text=True).stdout.split()
        if not users:
            problems.append("quick.yaml claims a use nothing has")
    yield Verdict(19, "BENCHMARKS commands and quick.yaml claims", GOOD if not problems else BAD,
                  "consistent" if not problems else "; ".join(problems[:2]))


def item20(lab: Lab) -> Iterator[Verdict]:
    """Every documented ``pfgraph ...`` command names a real sub-command and real flags; a test
    keeps it so."""
    import argparse

    from pfgraph.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    failures = []
    n = 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text().replace("\\\n", " ")
        blocks = re.findall(r"(?ms)^```[^\n]*\n(.*?)^```", text)  # fenced code
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"(?ms)^```.*?^```", "", text))  # inline code
        for m in re.finditer(r"(?m)^\s*(?:\$\s*)?(?:\.venv/bin/)?pfgraph ([^\n#|>]+)", "\n".join(blocks + spans)):
            try:
                args = shlex.split(m.group(1).replace("[", " ").replace("]", " "))
            except ValueError:
                continue
            if not args:
                continue
            n += 1
            if args[0].startswith("-"):
                known = parser._option_string_actions
            elif args[0] in subs:
                known = subs[args[0]]._option_string_actions
            else:
                failures.append(f"{doc.name}: no sub-command '{args[0]}'")
                continue
            unknown = [a.split("=")[0] for a in args[1:] if a.startswith("--") and a.split("=")[0] not in known]
            if unknown:
                failures.append(f"{doc.name}: pfgraph {args[0]} has no {unknown[0]}")
    tests = subprocess.run(["grep", "-rlE", "README|BENCHMARKS", "tests"], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    verdict = GOOD if not failures else BAD
    note = f"{n} documented commands use real flags" if not failures else \
        f"{len(failures)} of {n} do not: {failures[0]}"
    if not failures and not tests:
        verdict, note = POOR, note + "; no test runs them"
    yield Verdict(20, "documented commands exist (sub-commands and flags)", verdict, note)


# ------------------------------------------------------------------------------ issue 31 (round 3)


def _kept(path: Path, text: str) -> bool:
    return path.exists() and path.read_text() == text


def _refused_and_kept(r: Result, path: Path, text: str, *must: str) -> tuple[str, str]:
    """GOOD for a one-line refusal that left the user's ``path`` as it was; BAD when it is lost."""
    if not _kept(path, text):
        return BAD, f"{path.name} was replaced or removed (exit {r.rc})"
    return clean_failure(r, *must)


def item21(lab: Lab) -> Iterator[Verdict]:
    """pfgraph overwrites and deletes only what it wrote (issue 31's 11 BAD cases)."""
    note = "my notes\n"
    user = lab.path("own/notes.txt")
    user.write_text(note)
    r = lab.cli("simulate", "--events", "4", "--out", str(user), "--workers", "0")
    yield Verdict(21, "simulate --out onto a user's text file", *_refused_and_kept(r, user, note, str(user), "--force"))
    run = lab.path("own/run")
    run.mkdir()
    cfg_text = "# my config, with comments\ntrain: {lr: 0.001}\n"
    (run / "config.yaml").write_text(cfg_text)
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run), "--epochs", "1", "--device",
                "cpu", *TINY)
    yield Verdict(21, "train --out DIR holding a user's config.yaml",
                  *_refused_and_kept(r, run / "config.yaml", cfg_text, "config.yaml"))
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--config", str(run / "config.yaml"), "--out",
                str(run), "--epochs", "1", "--device", "cpu", "--force", *TINY)
    yield Verdict(21, "train --config DIR/config.yaml --out DIR (even --force)",
                  *_refused_and_kept(r, run / "config.yaml", cfg_text, "input"))
    study_dir = lab.path("own/study")
    study_dir.mkdir()
    results = "# RESULTS by hand\n"
    (study_dir / "RESULTS.md").write_text(results)
    src = ROOT / "tests" / "study" / "tiny.yaml"
    r = lab.cli("study", str(src), "--out", str(study_dir), "--only", "simulate:test")
    yield Verdict(21, "study --out DIR holding a hand-written RESULTS.md",
                  *_refused_and_kept(r, study_dir / "RESULTS.md", results, "RESULTS.md"))
    (study_dir / "RESULTS.md").unlink()
    own = study_dir / "study.yaml"
    own_text = "# my study file\n" + src.read_text()
    own.write_text(own_text)
    r = lab.cli("study", str(own), "--out", str(study_dir), "--only", "simulate:test")
    yield Verdict(21, "study DIR/study.yaml --out DIR (the file read)",
                  *((GOOD, "ran; the study file read is left as it is") if r.rc == 0 and _kept(own, own_text) else
                    (BAD, "the study file read was overwritten") if not _kept(own, own_text) else
                    (POOR, (r.err_lines or ["?"])[0][:160])))
    figs = lab.path("own/figures")
    figs.mkdir()
    png = b"\x89PNG\r\n\x1a\n the user's figure"
    (figs / "plot.png").write_bytes(png)
    r = lab.cli("evaluate", str(lab.run()), "--data", str(lab.data()), "--out", str(figs), "--no-plots",
                "--device", "cpu")
    lost = not (figs / "plot.png").exists()
    yield Verdict(21, "evaluate --out a folder of the user's PNGs",
                  *((BAD, "the user's PNG was deleted") if lost else clean_failure(r, "plot.png", "--force")))
    page = lab.path("own/page")
    page.mkdir()
    (page / "index.html").write_text("<html>mine</html>")
    (page / "summary.md").write_text("# mine\n")
    r = lab.cli("report", str(lab.evaluation(1)), "--out", str(page))
    yield Verdict(21, "report --out DIR holding a user's index.html and summary.md",
                  *_refused_and_kept(r, page / "index.html", "<html>mine</html>", "index.html"))
    here = lab.path("own/here")
    here.mkdir()
    (here / "keep.txt").write_text("x")
    p = subprocess.run(lab.argv("report", str(lab.evaluation(1)), "--out", "."), cwd=here, env=lab.env,
                       capture_output=True, text=True)
    r = Result(p.returncode, p.stdout, p.stderr, 0.0)
    sprayed = sorted(x.name for x in here.iterdir() if x.name != "keep.txt")
    yield Verdict(21, "report --out . (the current folder)",
                  *((BAD, f"wrote {len(sprayed)} files into the current folder") if sprayed else clean_failure(r, ".")))
    r = lab.cli("inspect", str(lab.data()), "--display", str(user))
    yield Verdict(21, "inspect --display over a text file", *_refused_and_kept(r, user, note, str(user)))
    size = lab.data().stat().st_size
    r = lab.cli("inspect", str(lab.data()), "--display", str(lab.data()), "--force")
    yield Verdict(21, "inspect --display over the ROOT file inspected (even --force)",
                  *((BAD, "the data file was replaced") if lab.data().stat().st_size != size else
                    clean_failure(r, "the file being inspected")))


def item22(lab: Lab) -> Iterator[Verdict]:
    """A model that predicts nothing (train.lr=1e10) is flagged degenerate and never ranked."""
    run = lab.path("runs/zero")
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run), "--epochs", "1",
                "--device", "cpu", *TINY, "train.lr=1e10")
    ev = lab.path("evals/zero")
    e = lab.cli("evaluate", str(run), "--data", str(lab.data(2)), "--out", str(ev), "--no-plots", "--device", "cpu",
                "--bootstrap", "20")
    if r.rc or e.rc:
        yield Verdict(22, "degenerate model (train.lr=1e10)", POOR, (r.err_lines + e.err_lines or ["?"])[0][:160])
        return
    doc = json.loads((ev / "metrics.json").read_text())
    missed = doc["headline"]["figures"]["missed_pixel_fraction"]["value"]
    flagged = (doc.get("degenerate") or {}).get("flag") is True and "DEGENERATE" in e.out
    yield Verdict(22, "evaluate a model that predicts nothing", GOOD if flagged else BAD,
                  f"metrics.json degenerate: {doc.get('degenerate', {}).get('reasons')} (missed {missed:.2f}); "
                  "summary line says DEGENERATE" if flagged else "not flagged")
    ana = lab.path("runs/analytic")
    lab.cli("train", "--model", "analytic", "--data", str(lab.data()), "--out", str(ana), "--device", "cpu")
    ev_ana = lab.path("evals/analytic")
    lab.cli("evaluate", str(ana), "--data", str(lab.data(2)), "--out", str(ev_ana), "--no-plots", "--device", "cpu",
            "--bootstrap", "20")
    rep = lab.path("reports/degenerate")
    r = lab.cli("report", str(ev), str(ev_ana), "--out", str(rep))
    rows = json.loads((rep / "summary.json").read_text())["models"] if r.rc == 0 else []
    order = [(row["model"], row["ranked"]) for row in rows]
    ok = order and order[-1] == ("cnn", False) and all(rk for _, rk in order[:-1])
    yield Verdict(22, "report with the degenerate model first on the command line", GOOD if ok else BAD,
                  f"flagged, listed last, never ranked: {order}" if ok else f"rows {order}")


def item23(lab: Lab) -> Iterator[Verdict]:
    """The report changes as one unit: SIGTERM during a re-report, stale figures."""
    rep = lab.path("reports/atomic")
    a, b = lab.evaluation(1), lab.path("evals/cnn_s1_copy")
    if not b.exists():
        shutil.copytree(a, b)
    first = lab.cli("report", str(a), str(b), "--out", str(rep))
    before = sha_all(rep)
    proc = subprocess.Popen(lab.argv("report", str(a), "--out", str(rep)), cwd=lab.base, env=lab.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not any(
            any(t.glob("*.png")) for t in rep.parent.glob(".atomic.report-*.tmp")):
        time.sleep(0.02)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    if finished:
        yield Verdict(23, "SIGTERM during a re-report", SKIP, "the report finished before the signal could be sent")
        return
    left = list(rep.parent.glob(".atomic.report-*.tmp"))
    same = sha_all(rep) == before
    verdict = GOOD if first.rc == 0 and same and not left else BAD if not same else POOR
    yield Verdict(23, "SIGTERM during a re-report", verdict,
                  f"the previous report intact ({len(before)} files), no temporary left | {err.strip()[:60]}"
                  if verdict == GOOD else f"changed={not same}, leftovers={len(left)}")
    r = lab.cli("report", str(a), "--out", str(rep))
    stale = sorted(set(before) - set(sha_all(rep)))
    listed = set(json.loads((rep / "summary.json").read_text()).get("files", [])) if r.rc == 0 else set()
    ok = r.rc == 0 and set(sha_all(rep)) == listed
    yield Verdict(23, "re-report with fewer models: stale PNGs", GOOD if ok else BAD,
                  f"only the new report's files ({len(listed)}); gone: {', '.join(stale[:3])}" if ok else
                  f"files beside the new report: {sorted(set(sha_all(rep)) - listed)[:3]}")


def item24(lab: Lab) -> Iterator[Verdict]:
    """One writer per run folder: a second train is refused naming the holder; a dead holder's lock is taken over."""
    run = lab.path("runs/locked")
    first = subprocess.Popen(lab.argv("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run),
                                      "--epochs", "40", "--device", "cpu", *TINY), cwd=lab.base, env=lab.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoint_last.pt").exists():
        time.sleep(0.1)
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run), "--epochs", "40",
                "--device", "cpu", "--seed", "7", *TINY)
    first.kill()  # kill -9: the lock file stays, its flock goes with the process
    first.wait()
    yield Verdict(24, "a second train into a run folder being trained", *clean_failure(r, f"pid={first.pid}"))
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run), "--epochs", "1",
                "--device", "cpu", *TINY)
    yield Verdict(24, "train after the holder was killed (-9)", GOOD if r.rc == 0 else POOR,
                  "the stale lock was taken over" if r.rc == 0 else (r.err_lines or ["?"])[0][:160])
    study = lab.path("own/locked_study")
    study.mkdir(exist_ok=True)
    src = ROOT / "tests" / "study" / "tiny.yaml"
    hold = ("import sys, time; from pfgraph.utils.lock import folder_lock\n"
            f"with folder_lock({str(study)!r}, 'study'):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold], env=lab.env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    holder.stdout.readline()
    r = lab.cli("study", str(src), "--out", str(study))
    holder.kill()
    holder.wait()
    yield Verdict(24, "a second study on a study folder in use", *clean_failure(r, f"pid={holder.pid}"))


def item25(lab: Lab) -> Iterator[Verdict]:
    """A 900-byte study YAML of nested aliases (billions of values) gives one short line."""
    lines = ['a: &a ["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "xxxxxxxxxxxxxxxxxxxxxxx"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("name: *j")
    bomb = lab.path("yaml/bomb.yaml")
    bomb.write_text("\n".join(lines) + "\n")
    r = lab.cli("study", str(bomb), "--dry-run", timeout=120)
    verdict, note = clean_failure(r, "aliases")
    if len(r.err) > 400:
        verdict, note = POOR, f"{len(r.err)} bytes on stderr | {note[:100]}"
    yield Verdict(25, f"study YAML of nested aliases ({bomb.stat().st_size} bytes)", verdict,
                  f"{note} ({len(r.err)} bytes, {r.seconds:.1f} s)")


def _study_variant(lab: Lab, name: str, edit: Callable[[dict], None]) -> Path:
    import yaml

    doc = yaml.safe_load((ROOT / "tests" / "study" / "tiny.yaml").read_text())
    edit(doc)
    path = lab.path(f"yaml/{name}.yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def item26(lab: Lab) -> Iterator[Verdict]:
    """A study is validated whole before its first step, --dry-run included."""
    cases = [("unknown model", lambda d: d["models"].append("nosuchmodel"), "nosuchmodel"),
             ("unknown sim preset", lambda d: d["datasets"]["test"].update(sim="gauss_b999"), "gauss_b999"),
             ("sim: ../../../etc/passwd", lambda d: d["datasets"]["test"].update(sim="../../../etc/passwd"), ".."),
             ("bad override", lambda d: d["training"]["overrides"].append("train.nosuch=1"), "train.nosuch")]
    for label, edit, must in cases:
        path = _study_variant(lab, label.split(":")[0].replace(" ", "_"), edit)
        out = lab.path(f"studies/{path.stem}")
        r = lab.cli("study", str(path), "--out", str(out), "--dry-run")
        article = "an " if label.startswith("unknown") else "a " if label.startswith("bad") else ""
        yield Verdict(26, f"study --dry-run with {article}{label}",
                      *clean_failure(r, must, leftovers=[out]))
    path = _study_variant(lab, "train_on_test", lambda d: d.update(evaluate_on=["test", "train"]))
    r = lab.cli("study", str(path), "--dry-run")
    warned = r.rc == 0 and "pfgraph: warning:" in r.err and "trains on" in r.err
    yield Verdict(26, "evaluate_on includes train_on", GOOD if warned else POOR,
                  r.err.strip()[:160] if warned else "no warning")
    dup = lab.path("yaml/dup.yaml")
    dup.write_text((ROOT / "tests" / "study" / "tiny.yaml").read_text() + "name: other\n")
    yield Verdict(26, "duplicate key in a study YAML", *clean_failure(lab.cli("study", str(dup), "--dry-run"),
                                                                      "duplicate key 'name'"))
    dup_sim = lab.path("yaml/dup_sim.yaml")
    dup_sim.write_text("detector:\n  b_field: 0.5\n  b_field: 0.0\n")
    r = lab.cli("simulate", "--config", str(dup_sim), "--events", "4", "--out", str(lab.path("data/dup.root")))
    yield Verdict(26, "duplicate key in a sim YAML", *clean_failure(r, "duplicate key 'b_field'"))


def item27(lab: Lab) -> Iterator[Verdict]:
    """Python API type errors are one PfgraphError naming the argument."""
    code = (
        "import pfgraph, sys\nfrom pfgraph.errors import PfgraphError\n"
        "cases = [lambda: pfgraph.train(model=123, out='r'), lambda: pfgraph.simulate(None, 'x.root'),\n"
        "         lambda: pfgraph.evaluate('r', 'd.root', 'e', bootstrap='x'),\n"
        "         lambda: pfgraph.train('cnn', 'r', 'd.root', overrides='train.lr=1e-3')]\n"
        "for f in cases:\n"
        "    try:\n        f(); print('ACCEPTED')\n"
        "    except PfgraphError as e:\n        print('PfgraphError:', e)\n"
        "    except Exception as e:\n        print('RAW', type(e).__name__, e)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=lab.path("api/x").parent, env=lab.env, capture_output=True,
                       text=True, timeout=300)
    lines = p.stdout.splitlines()
    names = ["pfgraph.train(model=123)", "simulate(None, ...)", "evaluate(bootstrap='x')", "overrides='train.lr=1e-3'"]
    for name, want, line in zip(names, ["'model'", "'config'", "'bootstrap'", "'overrides'"], lines + [""] * 4):
        verdict = GOOD if line.startswith("PfgraphError:") and want in line else BAD if "ACCEPTED" in line else POOR
        yield Verdict(27, name, verdict, line[:160])


def item28(lab: Lab) -> Iterator[Verdict]:
    """Resource limits: workers, disk estimate, a 245-byte name, read-only and empty studies, B = 1e308."""
    r = lab.cli("simulate", "--events", "8", "--out", str(lab.path("res/w.root")), "--workers", "1000")
    capped = r.rc == 0 and "capped at" in r.err
    yield Verdict(28, "simulate --workers 1000", GOOD if capped else POOR,
                  r.err.strip()[:160] if capped else (r.err_lines or ["not capped"])[0][:160])
    big = lab.path("res/big.root")
    r = lab.cli("simulate", "--events", "100000000", "--out", str(big))
    yield Verdict(28, "simulate --events 100000000 (about 5 TB)", *clean_failure(r, "need about", leftovers=[big]))
    long = lab.path("res/" + "n" * 240 + ".root")
    r = lab.cli("simulate", "--events", "8", "--out", str(long), "--workers", "0")
    yield Verdict(28, "simulate into a legal 245-byte file name", GOOD if r.rc == 0 and long.exists() else POOR,
                  "written" if r.rc == 0 else (r.err_lines or ["?"])[0][:160])
    src = ROOT / "tests" / "study" / "tiny.yaml"
    mount = lab.path("res/ro")
    mount.mkdir(exist_ok=True)
    if shutil.which("unshare") and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0:
        cmd = " ".join(shlex.quote(a) for a in lab.argv("study", str(src), "--out", str(mount / "st")))
        p = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {shlex.quote(str(mount))} && "
                            f"cd {shlex.quote(str(lab.base))} && {cmd}"], env=lab.env, capture_output=True, text=True)
        yield Verdict(28, "study into a read-only folder", *clean_failure(Result(p.returncode, p.stdout, p.stderr, 0),
                                                                          "not writable"))
    else:
        yield Verdict(28, "study into a read-only folder", SKIP, "no user/mount namespaces")
    empty = lab.path("yaml/empty.yaml")
    empty.write_text("")
    yield Verdict(28, "an empty study YAML", *clean_failure(lab.cli("study", str(empty), "--dry-run"), "missing"))
    out = lab.path("res/b.root")
    r = lab.cli("simulate", "--events", "4", "--out", str(out), "detector.b_field=1e308")
    yield Verdict(28, "simulate detector.b_field=1e308", *clean_failure(r, "detector.b_field", leftovers=[out]))


def item29(lab: Lab) -> Iterator[Verdict]:
    """Silent mismatches: other detector config, the training file itself, one folder given twice to report."""
    b0 = lab.path("data/b000_s3.root")
    if not b0.exists():
        lab.cli("simulate", "--config", "gauss_b000", "--events", str(EVENTS), "--seed", "3", "--out", str(b0),
                "--workers", "0")
    for label, data, must in (("a B = 0.5 model evaluated on a B = 0 file", b0, "detector.b_field"),
                              ("a model evaluated on its own training file", lab.data(), "own training data")):
        out = lab.path(f"evals/mismatch_{data.stem}")
        r = lab.cli("evaluate", str(lab.run()), "--data", str(data), "--out", str(out), "--no-plots", "--device",
                    "cpu", "--bootstrap", "0")
        mm = json.loads((out / "metrics.json").read_text()).get("data_mismatch") if r.rc == 0 else None
        ok = bool(mm and mm.get("flag") and any(must in x for x in mm["reasons"])) and "DATA MISMATCH" in r.out
        yield Verdict(29, label, GOOD if ok else BAD,
                      f"metrics.json data_mismatch: {mm['reasons'][0][:110]}" if ok else f"not flagged: {mm}")
    ev = lab.evaluation(1)
    rep = lab.path("reports/twice")
    r = lab.cli("report", str(ev), str(ev), "--out", str(rep))
    rows = json.loads((rep / "summary.json").read_text())["models"] if r.rc == 0 else []
    yield Verdict(29, "the same evaluation folder given twice to report", GOOD if len(rows) == 1 else BAD,
                  "shown once" if len(rows) == 1 else f"{len(rows)} rows")


def item30(lab: Lab) -> Iterator[Verdict]:
    """The closing notes: owner-checked cleanup, event_id bit flips, unreadable-basket wording."""
    run = lab.path("runs/tmpclean")
    shutil.copytree(lab.run(), run, dirs_exist_ok=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    live = run / f".metrics.csv.{sleeper.pid}-livewrit.tmp"
    live.write_text("a live writer's partial file")
    r = lab.cli("train", "--model", "cnn", "--data", str(lab.data()), "--out", str(run), "--epochs", "2",
                "--device", "cpu", *TINY)
    kept = live.exists()
    sleeper.kill()
    sleeper.wait()
    yield Verdict(30, "clean_stale_temporaries beside a live writer's temporary", GOOD if kept and r.rc == 0 else BAD,
                  "the live writer's temporary kept (its pid runs)" if kept else "removed a live writer's file")
    import numpy as np

    from pfgraph.io.root import EventFiles

    plain = lab.data(1, "none")
    ids = EventFiles(plain).read(["event_id"])["event_id"]
    raw = bytearray(plain.read_bytes())
    pos = raw.find(np.asarray(ids).astype(">i8").tobytes())
    raw[pos + 8 * 7 + 7] ^= 0x04  # event 7's id becomes 3
    flipped = lab.path("data/idflip.root")
    flipped.write_bytes(bytes(raw))
    yield Verdict(30, "inspect: bit flip in event_id (--compression none)",
                  *clean_failure(lab.cli("inspect", str(flipped)), str(flipped), "event_id 3"))
    import uproot

    src = lab.data(4)
    b = uproot.open(src)["events"]["hcal"]
    seek, nbytes = int(b.member("fBasketSeek")[0]), int(b.member("fBasketBytes")[0])
    raw = bytearray(src.read_bytes())
    raw[seek + nbytes - 40] ^= 0xFF  # the basket's LZ4 checksum no longer matches
    bad = lab.path("data/bad_basket.root")
    bad.write_bytes(bytes(raw))
    out = lab.path("runs/bad_basket")
    r = lab.cli("train", "--model", "cnn", "--data", str(bad), "--out", str(out), "--epochs", "1", "--device", "cpu",
                *TINY)
    yield Verdict(30, "train on a file with an unreadable basket (fast reader)",
                  *clean_failure(r, str(bad), "corrupt or unreadable ROOT file", leftovers=[out]))


ITEMS: dict[int, Callable[[Lab], Iterator[Verdict]]] = {
    1: item1, 2: item2, 3: item3, 4: item4, 5: item5, 6: item6, 7: item7, 8: item8, 9: item9, 10: item10,
    11: item11, 12: item12, 13: item13, 14: item14, 15: item15, 16: item16, 17: item17, 18: item18, 19: item19,
    20: item20, 21: item21, 22: item22, 23: item23, 24: item24, 25: item25, 26: item26, 27: item27, 28: item28,
    29: item29, 30: item30,
}


def table(rows: list[Verdict], markdown: bool) -> str:
    """The verdicts as a plain or Markdown table."""
    if markdown:
        head = "| item | case | verdict | what happened |\n|---|---|---|---|\n"
        return head + "".join(f"| {r.item} | {r.case} | {r.verdict} | {r.note.replace('|', '/')} |\n" for r in rows)
    w = max(len(r.case) for r in rows)
    return "\n".join(f"{r.item:>3}  {r.case:<{w}}  {r.verdict:<4}  {r.note}" for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fault table; exit 1 if any case is BAD."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="comma-separated item numbers (default: all 30)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    items = sorted(ITEMS) if not args.only else [int(x) for x in args.only.split(",")]
    base = Path(tempfile.mkdtemp(prefix="pfgraph-faults-"))
    lab = Lab(base)
    rows: list[Verdict] = []
    t0 = time.perf_counter()
    try:
        for item in items:
            t = time.perf_counter()
            try:
                for v in ITEMS[item](lab):
                    rows.append(v)
                    print(f"[{time.perf_counter() - t0:6.1f} s] {v.item:>2} {v.verdict:<4} {v.case}", file=sys.stderr,
                          flush=True)
            except Exception as exc:  # a case that cannot even run is reported, not fatal
                rows.append(Verdict(item, "(case could not run)", POOR, f"{type(exc).__name__}: {exc}"[:200]))
            del t
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(table(rows, args.markdown))
    counts = {k: sum(r.verdict == k for r in rows) for k in (GOOD, POOR, BAD, SKIP)}
    print(f"\n{len(rows)} cases in {time.perf_counter() - t0:.0f} s: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if counts[BAD] else 0


if __name__ == "__main__":
    sys.exit(main())
