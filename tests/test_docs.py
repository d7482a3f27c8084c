"""Every command the README and the docs show exists as shown (issue 16.20).

Commands are collected from the fenced ``bash`` blocks and the inline code spans of README.md,
docs/*.md and the comments of the presets (pfgraph/presets/*/*.yaml):

* ``pfgraph SUB ...`` (also ``.venv/bin/pfgraph``, ``python -m pfgraph.cli``, ``torchrun ... -m
  pfgraph.cli``): every ``--flag`` must be one of SUB's options, with a value its choices and type
  accept; ``key=value`` overrides must be accepted by SUB's config; a complete command from a
  code block must parse as a whole (required arguments included). Optional parts in ``[...]``
  and ``...`` elisions only have their flags checked.
* ``python scripts/X.py --flag`` / ``scripts/X.sh --flag``: the script exists and defines the flag.
* ``make TARGET [VAR=...]``: the Makefile has the target and the variable.
* ``section.key: value`` and ``section.key`` spans: a key of the simulation or run config.

``pfgraph SUB --help`` is run for every sub-command mentioned.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pfgraph.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIG_COMMENTS = sorted((ROOT / "pfgraph" / "presets").glob("*/*.yaml"))
PFGRAPH = re.compile(r"^(?:\.venv/bin/)?(?:pfgraph|python -m pfgraph\.cli|torchrun .*-m pfgraph\.cli)\s+(?P<rest>.*)$")
SECTIONS_SIM = ("output", "detector", "particles", "pileup", "jets")
SECTIONS_RUN = ("train", "data", "model")
FILE_NAME = r"[\w.-]+\.(?:root|ya?ml|json|csv|md|png|pt|html|txt|log)"


@dataclass(frozen=True)
class Shown:
    """One command as a document shows it."""

    where: str  # file:line
    text: str
    block: bool  # from a code block (a complete command) rather than an inline span


def _strip_comment(line: str) -> str:
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def collect() -> list[Shown]:
    """Every command, key and script reference of the documents."""
    found: list[Shown] = []
    for path in [*DOCS, *CONFIG_COMMENTS]:
        rel = path.relative_to(ROOT)
        lines = path.read_text().splitlines()
        if path.suffix == ".yaml":
            lines = [line.split("#", 1)[1] if "#" in line else "" for line in lines]
        fence: str | None = None
        pending = ""
        for i, line in enumerate(lines, 1):
            if line.startswith("```"):
                fence = None if fence is not None else (line[3:].strip() or "text")
                continue
            if fence in ("bash", "sh", "console", "shell"):
                text = pending + _strip_comment(line)
                if text.endswith("\\"):
                    pending = text[:-1] + " "
                    continue
                pending = ""
                if text:
                    found.append(Shown(f"{rel}:{i}", text, True))
                continue
            if fence is not None:
                continue
            for span in re.findall(r"`([^`]+)`", line):
                found.append(Shown(f"{rel}:{i}", span.strip(), False))
    return found


def _sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if name not in action.choices:
        raise AssertionError(f"no sub-command '{name}' (have {', '.join(action.choices)})")
    return action.choices[name]


def _placeholder(value: str) -> bool:
    """``N``, ``FILE``, ``M``, ``E``: a stand-in the reader replaces."""
    return bool(re.fullmatch(r"[A-Z][A-Z_]*", value))


def _check_flags(sub: argparse.ArgumentParser, tokens: list[str]) -> None:
    """Each ``--flag`` exists; its value passes its choices and type unless it is a placeholder."""
    options = {s: a for a in sub._actions for s in a.option_strings}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-"):
            flag, _, inline = tok.partition("=")
            if flag not in options:
                raise AssertionError(f"'{flag}' is not an option of 'pfgraph {sub.prog.split()[-1]}'")
            action = options[flag]
            if action.nargs == 0:
                i += 1
                continue
            value = inline or (tokens[i + 1] if i + 1 < len(tokens) else "")
            if value and not _placeholder(value):
                if action.choices is not None and value not in action.choices:
                    raise AssertionError(f"'{flag} {value}': not one of {', '.join(map(str, action.choices))}")
                if action.type is int:
                    int(value)
            i += 1 if inline else 2
            continue
        i += 1


def _check_overrides(name: str, ns: argparse.Namespace | None, overrides: list[str]) -> None:
    """The overrides are accepted by the command's config (with the shown preset/model where given)."""
    if not overrides:
        return
    if name == "simulate":
        from pfgraph.config import load_config, resolve_config_path
        from pfgraph.sim.detector import SimConfig

        config = getattr(ns, "config", None) or "gauss_b050"
        load_config(SimConfig, resolve_config_path(config, "sim"), overrides)
    elif name == "train":
        from pfgraph.training.config import build_run_config, load_model_section, train_preset_data

        model = getattr(ns, "model", None)
        model = "cnn" if model is None or _placeholder(model) else model
        build_run_config(load_model_section(model, getattr(ns, "repr", None)),
                         train_preset_data(getattr(ns, "config", None) or "default"), overrides)
    else:
        raise AssertionError(f"'pfgraph {name}' takes no key=value overrides")


def complete(rest: str, block: bool) -> bool:
    """Whether a shown command is meant to be typed as it is: every code-block line, and an inline
    span with three flags or more (``pfgraph simulate --format rntuple`` is a fragment in prose)."""
    return block or sum(t.startswith("--") for t in shlex.split(rest)) >= 3


def check_pfgraph(rest: str, block: bool) -> str:
    """Check one ``pfgraph ...`` command; returns its sub-command."""
    tokens = shlex.split(rest)
    temporary = [t for t in tokens if t.startswith(("/tmp/", "/var/tmp/"))]
    assert not temporary, f"names a temporary path ({temporary[0]}) that a reader does not have"
    name = tokens[0]
    parser = build_parser()
    sub = _sub(parser, name)
    optional: list[str] = []
    kept: list[str] = []
    depth = 0
    for tok in tokens[1:]:
        opens, closes = tok.count("["), tok.count("]")
        bare = tok.strip("[]")
        if depth or opens:
            optional.append(bare)
        else:
            kept.append(tok)
        depth += opens - closes
    elided = "..." in kept or "..." in optional
    kept = [t for t in kept if t != "..."]
    optional = [t for t in optional if t not in ("...", "key=value", "")]
    _check_flags(sub, kept)
    _check_flags(sub, optional)
    overrides = [t for t in kept + optional if re.fullmatch(r"[a-z_]+(\.[a-z_]+)+=\S+", t)]
    ns = None
    if complete(rest, block) and not elided:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                ns = parser.parse_args([name, *kept])
            except SystemExit as exc:
                raise AssertionError(f"does not parse: {err.getvalue().strip().splitlines()[-1]}") from exc
    else:
        with contextlib.suppress(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            ns, _ = sub.parse_known_args(kept)
    _check_overrides(name, ns, overrides)
    return name


def check_script(text: str) -> None:
    """``python scripts/x.py --flag`` / ``scripts/x.sh --flag``: the file exists and defines each flag."""
    tokens = shlex.split(text)
    if tokens[0] == "python":
        tokens = tokens[1:]
    path = ROOT / tokens[0].rstrip(",.;:)")
    if "*" in tokens[0]:
        assert list(ROOT.glob(tokens[0])), f"{tokens[0]}: no such files"
        return
    assert path.exists(), f"{tokens[0]}: no such file"
    flags = [t.split("=")[0] for t in tokens[1:] if t.startswith("--")]
    if not flags:
        return
    source = path.read_text()
    for flag in flags:
        if path.suffix == ".py":
            assert f'"{flag}"' in source, f"{path.name} has no option {flag}"
        else:
            assert re.search(rf"^\s*{re.escape(flag)}\)", source, re.M), f"{path.name} has no option {flag}"


def check_make(text: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for tok in shlex.split(text)[1:]:
        if "=" in tok:
            var = tok.split("=")[0]
            assert re.search(rf"^{var}\s*[?:]?=", makefile, re.M), f"Makefile has no variable {var}"
        else:
            assert re.search(rf"^{re.escape(tok)}:", makefile, re.M), f"Makefile has no target '{tok}'"


def check_key(text: str) -> None:
    """``section.key`` or ``section.key: value``: a key of the simulation or run config."""
    from pfgraph.config import load_config
    from pfgraph.sim.detector import SimConfig
    from pfgraph.training.config import build_run_config, load_model_section, train_preset_data

    key, _, value = text.partition(":")
    key, value = key.strip(), value.strip()
    if key.split(".")[0] in SECTIONS_SIM:
        if value:
            load_config(SimConfig, None, [f"{key}={value}"])
        else:
            node: object = SimConfig()
            for part in key.split("."):
                assert hasattr(node, part), f"no config key '{key}'"
                node = getattr(node, part)
    else:
        cfg = build_run_config(load_model_section("cnn"), train_preset_data("default"),
                               [f"{key}={value}"] if value else [])
        node = cfg
        for part in key.split("."):
            if isinstance(node, dict):
                assert part in node, f"no config key '{key}'"
                node = node[part]
            else:
                assert hasattr(node, part), f"no config key '{key}'"
                node = getattr(node, part)


def classify(shown: Shown) -> tuple[str, str] | None:
    """(kind, text) of what the checks cover; None for prose and other tools' commands."""
    text = shown.text
    if (m := PFGRAPH.match(text)) is not None:
        rest = m.group("rest")
        if rest and re.match(r"[a-z]", rest):
            return "pfgraph", rest
        return None
    if re.match(r"^(python\s+)?scripts/\S+", text):
        return "script", text
    if re.match(r"^make\s+\w", text):
        return "make", text
    if re.fullmatch(FILE_NAME, text):
        return None  # a file name (`train.root`), not a config key
    if re.fullmatch(rf"(?:{'|'.join(SECTIONS_SIM + SECTIONS_RUN)})(?:\.[a-z_]+)+(?::\s*\S+)?", text):
        return "key", text
    return None


def shown_commands() -> Iterator[tuple[Shown, str, str]]:
    for shown in collect():
        kind = classify(shown)
        if kind is not None:
            yield shown, *kind


CASES = list(shown_commands())


def test_the_documents_show_commands() -> None:
    kinds = {kind for _, kind, _ in CASES}
    assert kinds == {"pfgraph", "script", "make", "key"}
    assert sum(kind == "pfgraph" for _, kind, _ in CASES) >= 20


@pytest.mark.parametrize("shown, kind, text", CASES, ids=[f"{s.where} {s.text[:50]}" for s, _, _ in CASES])
def test_documented_command_exists(shown: Shown, kind: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # relative config paths in the documents are from the repository root
    try:
        if kind == "pfgraph":
            check_pfgraph(text, shown.block)
        elif kind == "script":
            check_script(text)
        elif kind == "make":
            check_make(text)
        else:
            check_key(text)
    except Exception as exc:
        pytest.fail(f"{shown.where}: `{shown.text}`: {exc}")


def test_every_subcommand_help_runs(capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted({shlex.split(text)[0] for _, kind, text in CASES if kind == "pfgraph"})
    assert {"simulate", "train", "evaluate", "inspect", "report", "demo", "schema", "models"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([name, "--help"])
        assert exc.value.code == 0
        assert f"usage: pfgraph {name}" in capsys.readouterr().out


def _benchmark_sections() -> set[str]:
    return set(re.findall(r"^## (.+)$", (ROOT / "docs" / "BENCHMARKS.md").read_text(), re.M))


def section_references() -> list[tuple[str, str]]:
    """(file, section) for every pointer to a docs/BENCHMARKS.md section in the documents and the code:
    ``docs/BENCHMARKS.md, section "X"`` (or ``, "X"``) and ``## X`` in a docstring or comment near it."""
    refs = []
    for path in [*DOCS, *sorted((ROOT / "pfgraph").rglob("*.py")), *sorted((ROOT / "scripts").glob("*.py"))]:
        text = re.sub(r"\s*\n\s*(?:#:?\s*)?", " ", path.read_text())  # join wrapped lines and comments
        for pattern in (r"BENCHMARKS\.md`?(?:,| \(| section)\s*(?:section\s+)?(?:\"|``## )([^\"`]+)",
                        r"(?:``## |section \")([^\"`]+)(?:``|\") section of docs/BENCHMARKS\.md",
                        r"section \"([^\"]+)\" of docs/BENCHMARKS\.md"):
            refs += [(str(path.relative_to(ROOT)), m.group(1)) for m in re.finditer(pattern, text)]
    return refs


def test_benchmark_sections_pointed_to_exist() -> None:
    refs = section_references()
    assert refs, "no pointers found: the pattern is stale"
    missing = [(f, sec) for f, sec in refs if sec not in _benchmark_sections()]
    assert not missing, missing


def test_checks_catch_what_does_not_exist() -> None:
    """The checks fail on a flag, value, key, target or script option that does not exist."""
    bad = [("pfgraph", "simulate --out x.root --no-such-flag 3", True),
           ("pfgraph", "simulate --out x.root --format parquet", True),
           ("pfgraph", "simulate --format rntuple", True),  # a complete command from a block misses --out
           ("pfgraph", "train ... detector.b_field=0.5", False),
           ("pfgraph", "evaluate runs/x --data d.root --out e --jet-backend magic", True),
           ("pfgraph", "train --repr image --model M --data b.root --epochs 1 --device cpu", False),  # no --out
           ("pfgraph", "train --model cnn --data /tmp/pfgraph-x/b.root --out r", True),
           ("script", "python scripts/bench_simulate.py --no-such-flag", False),
           ("script", "scripts/reproduce_paper.sh --no-such-flag", False),
           ("script", "scripts/examples/no_such_example.C", False),
           ("make", "make no_such_target", False),
           ("key", "output.format: parquet", False),
           ("key", "train.no_such_key", False)]
    for kind, text, block in bad:
        with pytest.raises(Exception):  # noqa: B017 - any failure of the check is the point
            {"pfgraph": lambda t, b=block: check_pfgraph(t, b), "script": check_script, "make": check_make,
             "key": check_key}[kind](text)
