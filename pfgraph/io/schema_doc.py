"""Render the data contract (:mod:`pfgraph.io.schema`) as plain text or Markdown.

``pfgraph schema`` prints :func:`render`; ``docs/SCHEMA.md`` is ``render(markdown=True)``
(``pfgraph schema --markdown --out docs/SCHEMA.md``), and a test fails when they drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pfgraph import geometry
from pfgraph.io import schema

_FORMATS_MD = """\
## File formats

Every file is a ROOT file with one or more trees and one `TObjString` named `{meta}`
holding a JSON object (the metadata below).

* **TTree** (the default). Images are fixed-size leaves `float[G][G]`, G the file's grid size
  (`imsize` in the metadata; {paper} by default, e.g. ROOT shows `emcal[{paper}][{paper}]/F`); `RDataFrame`
  columns are `ROOT::RVec<float>` of G x G values in row-major order, element `ieta * G + iphi`. Jagged branches are variable-size leaves with a counter
  branch: `pix_eta[npix]/F`, `truth_jet_pt[ntruth_jet]/F`.
* **RNTuple** (`pfgraph simulate --format rntuple` or `output.format: rntuple` for event files,
  `pfgraph evaluate --format rntuple` for predictions). Same field
  names and values. Images are `std::array<std::array<float,G>,G>` (RDataFrame column
  type `ROOT::RVec<ROOT::RVec<float>>`, element `[ieta][iphi]`); jagged fields are
  `std::vector<T>` and their counters (`npix`, ...) are plain `std::int32_t` fields.
  Needs ROOT >= 6.34 (RNTuple 1.0). `TTree::Draw` does not apply; use `RDataFrame`.

Compression is chosen per file (`output.compression`, default `lz4:1`; see
`docs/BENCHMARKS.md`, section "ROOT I/O", for the measured size/speed of ZLIB, LZ4 and ZSTD).
Sharded datasets are several files `stem.shard000.root`, ... with consecutive `event_id`s;
read them together as a chain (`TChain`, `RDataFrame("events", {{"a.root", "b.root"}})`,
`uproot.concatenate`, or `pfgraph` with a glob).

## The grid

G x G pixels, G = `imsize` of the file's metadata (the simulation's `detector.grid`: {sizes};
{paper}, the paper's, by default): eta in [-{eta}, {eta}] along axis 1 (rows, `ieta`), phi in [-pi, pi]
along axis 2 (columns, `iphi`), the same extent at every G. Pixel size 2 * {eta} / G in eta and
2 pi / G rad in phi ({deta:.6f} and {dphi:.6f} at G = {paper}); the centre of pixel (ieta, iphi) is
eta = -{eta} + (ieta + 0.5) * 2 * {eta} / G, phi = -pi + (iphi + 0.5) * 2 pi / G.
Energies are in GeV per pixel.

The point cloud (`npix`, `pix_*`) holds every pixel where any input channel (`emcal`, `hcal`,
`trk_neg`, `trk_pos`) is non-zero, in row-major (ieta, iphi) order; `pix_<image>` is the value
of that image at the point, so every dense image can be rebuilt exactly from the point cloud
wherever an input is non-zero (truth pixels with no input are out of reach of point-cloud
models and are only in the `truth` image, or the sparse truth of sparse-first files).

## Layouts: dense and sparse-first

An events file has one of two layouts, named by `layout` in its metadata (absent: dense).

* **dense** (`output.dense_images: always`, and `auto` on the paper's {paper} x {paper} grid; every file of
  schema versions 1-2): the images are `float[G][G]` branches, beside the point cloud.
* **sparse-first** (`output.dense_images: never`, and `auto` on every finer grid; `layout: "sparse"`):
  no image branch at all. The point cloud holds the inputs (every input image is zero off its points)
  and the sparse truth (`ntpix`, `tpix_ieta`, `tpix_iphi`, `tpix_truth`, `tpix_truth_neutral`, and
  `tpix_oracle` / `tpix_jet` where the file has them) holds every pixel where any truth-side image is
  non-zero, in row-major order. So each image is exactly the values of its sparse branch at
  (`ieta`, `iphi`) and zero elsewhere: pfgraph's readers rebuild them bit for bit while loading
  (`EventFiles.read`, the image datasets), and so can any reader, e.g. with ROOT:
  `image[tpix_ieta[k]][tpix_iphi[k]] = tpix_truth[k]`.
"""

_READING_MD = """\
## Reading the files

ROOT, C++ (a complete example: `scripts/examples/read_predictions.C`):

```cpp
TFile f("data/b050.root");
auto *events = f.Get<TTree>("events");
events->Draw("pix_emcal", "pix_emcal > 0");             // all points of all events
events->Draw("Sum$(truth)");                          // total truth energy per event
std::cout << f.Get<TObjString>("pfgraph_meta")->GetString() << std::endl;

ROOT::RDataFrame df("predictions", "evals/x/predictions.root");
auto h = df.Define("r", "auto m = truth > 0; return (pred[m] - truth[m]) / truth[m];")
           .Histo1D({"r", "residual", 1000, -5, 2}, "r");
```

Python with ROOT (`scripts/examples/read_predictions_rdf.py`) or with uproot, awkward and
hist, no ROOT needed (`scripts/examples/read_predictions_uproot.py`):

```python
import uproot
events = uproot.open("data/b050.root")["events"]
images = events["emcal"].array(library="np")      # (n, G, G) float32, G = the meta's imsize
points = events.arrays(filter_name="pix_*")         # jagged, one list per event
meta = uproot.open("data/b050.root")["pfgraph_meta"]  # JSON string
```

`pfgraph inspect FILE` prints every branch with its statistics, checks the file against this
contract and draws an event (`--event N --display out.png`).
"""

_POLICY_MD = """\
## Schema versions and migration policy

`schema_version` in `pfgraph_meta` says which version of this contract wrote a file. This
pfgraph writes version {version} and reads versions {oldest} to {version}.

* Any change a reader must know about (a branch renamed, removed, retyped or with a new
  meaning) increases the version by one and is listed in the history below. Adding an
  optional branch does not.
* A file from an **older** version is read through a migration: each version step declares
  which branches were renamed (the reader maps the new name to the old one) and which scalar
  branches were added (old files read them as a stated constant). The reader applies every
  step from the file's version to the current one; a step without a migration, or a version
  below {oldest}, is refused with one line naming the file and the versions. Version 1 is
  the first version, so there is nothing to migrate yet.
* A file from a **newer** version is refused with one line
  (`schema version N is newer than this pfgraph supports (M); upgrade pfgraph`): its
  branches may mean something this reader does not know.
* Files are never rewritten in place; to upgrade data, re-create it or read it with the
  migration and write it again.

| version | change |
|---:|---|
{history}
"""


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _shape(b: schema.Branch) -> str:
    if b.kind == "image":
        return "G x G"
    if b.kind == "jagged":
        return f"[{b.counter_name}]"
    return "scalar"


def _tree_table_md(spec: schema.TreeSpec) -> list[str]:
    lines = [f"### Tree `{spec.name}`", "", f"File: {spec.file}. {spec.doc[0].upper()}{spec.doc[1:]}.", "",
             "| branch | TTree leaf | RNTuple field | shape | unit | meaning |",
             "|---|---|---|---|---|---|"]
    for b in spec.branches:
        doc = b.doc + (" *(optional)*" if b.optional else "")
        lines.append(f"| `{b.name}` | `{b.root_type}` | `{b.rntuple_type}` | {_shape(b)} | {b.unit or '-'} | "
                     f"{_md_escape(doc)} |")
    return lines + [""]


def _tree_table_text(spec: schema.TreeSpec) -> list[str]:
    rows = [(b.name, b.root_type, _shape(b), b.unit or "-", b.doc + (" (optional)" if b.optional else ""))
            for b in spec.branches]
    header = ("branch", "type", "shape", "unit", "meaning")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    return [f"tree '{spec.name}' ({spec.file}): {spec.doc}", "  " + fmt.format(*header),
            *("  " + fmt.format(*r) for r in rows), ""]


def _grid_values() -> dict[str, Any]:
    g = geometry.PAPER_GRID
    return {"eta": geometry.MAX_ETA, "deta": g.eta_pixel, "dphi": g.phi_pixel, "paper": g.size,
            "sizes": ", ".join(map(str, geometry.GRID_SIZES))}


def _input_only_md() -> list[str]:
    dense = ", ".join(f"`{b}`" for b in schema.INPUT_DENSE_BRANCHES)
    points = ", ".join(f"`{b}`" for b in schema.INPUT_POINT_BRANCHES)
    return [
        "## Input-only files", "",
        "Events from another simulation (Geant4, Delphes) or real data need no truth to be predicted "
        "(`pfgraph predict`). The minimal layout is an `events` tree with the branches below, types and "
        "shapes as in the `events` table, and the `pfgraph_meta` string:", "",
        f"* image models read {dense} (dense images);",
        f"* graph models read {points} (the point cloud: every pixel with any non-zero input channel);",
        "* `pfgraph_meta`: `schema_version` (1) and `kind` (`\"events\"`), and the detector config as "
        "`config.detector` (the keys of `pfgraph simulate`'s `detector` section). `pfgraph predict` "
        "refuses a file whose detector config differs from the training data's unless "
        "`--allow-config-mismatch`; a file without one is predicted with a warning. Both are recorded "
        "in the output's meta.", "",
        "`pfgraph inspect FILE` validates such a file and says which commands it can feed (predict: yes; "
        "train and evaluate need the truth branches). `scripts/examples/write_input_only.py` writes one "
        "from numpy arrays with plain uproot.", "",
    ]


def render_markdown(trees: Sequence[schema.TreeSpec] = schema.TREES) -> str:
    """The full schema reference as Markdown (the content of ``docs/SCHEMA.md``)."""
    lines = [
        "# pfgraph file schema",
        "",
        "<!-- Generated by `pfgraph schema --markdown --out docs/SCHEMA.md` from pfgraph/io/schema.py;"
        " do not edit by hand (tests/io/test_schema_doc.py fails when they differ). -->",
        "",
        f"Schema version **{schema.SCHEMA_VERSION}**. Every pfgraph file can be read with ROOT alone "
        "(C++, `TTree::Draw`, `RDataFrame`) or with uproot; this page names every tree and branch.",
        "",
        _FORMATS_MD.format(meta=schema.META_KEY, **_grid_values()),
        "## Trees",
        "",
    ]
    for spec in trees:
        lines += _tree_table_md(spec)
    lines += _input_only_md()
    lines += ["## Metadata (`pfgraph_meta`)", "",
              f"A `TObjString` named `{schema.META_KEY}` holds one JSON object:", "",
              "| key | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {_md_escape(v)} |" for k, v in schema.META_FIELDS]
    lines += ["", _READING_MD]
    history = "\n".join(f"| {v} | {_md_escape(t)} |" for v, t in sorted(schema.SCHEMA_HISTORY.items()))
    lines.append(_POLICY_MD.format(version=schema.SCHEMA_VERSION, oldest=schema.MIN_SCHEMA_VERSION,
                                   history=history).rstrip("\n"))
    return "\n".join(lines) + "\n"


def render_text(trees: Sequence[schema.TreeSpec] = schema.TREES) -> str:
    """The schema as aligned plain-text tables (what ``pfgraph schema`` prints)."""
    g = _grid_values()
    lines = [
        f"pfgraph file schema, version {schema.SCHEMA_VERSION} (reads versions {schema.MIN_SCHEMA_VERSION}"
        f"-{schema.SCHEMA_VERSION}; newer files are refused)",
        f"grid: G x G (G = imsize of the file's metadata: {g['sizes']}; {g['paper']} by default), "
        f"eta in [-{g['eta']}, {g['eta']}] along axis 1 (rows), "
        "phi in [-pi, pi] along axis 2 (columns); energies in GeV",
        "formats: TTree (default) or RNTuple (--format rntuple), same names; metadata JSON in the "
        f"TObjString '{schema.META_KEY}'",
        "",
    ]
    for spec in trees:
        lines += _tree_table_text(spec)
    lines.append(f"metadata '{schema.META_KEY}' (JSON):")
    width = max(len(k) for k, _ in schema.META_FIELDS)
    lines += [f"  {k:<{width}}  {v}" for k, v in schema.META_FIELDS]
    return "\n".join(lines) + "\n"


def render(markdown: bool = False) -> str:
    """:func:`render_markdown` or :func:`render_text`."""
    return render_markdown() if markdown else render_text()
