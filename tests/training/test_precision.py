"""``train.precision``: its resolution (auto, fp32, bf16, the capability forced off), bf16 training
with fp32 weights, every model under bf16 autocast, resume across precisions, channels-last and
denormal flushing (:mod:`pfgraph.training.precision`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pfgraph.training import precision
from pfgraph.training.run_folder import BEST, LAST, read_checkpoint
from tests.training._helpers import cli, train_args

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the CPU has native bf16 (so the rule is tested on any machine)."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)


@pytest.fixture()
def no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the bf16 capability off (CPU and CUDA)."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda: False)


def test_explicit_precisions_are_kept(no_bf16: None) -> None:
    assert precision.resolve("fp32", CPU).name == "fp32"
    assert precision.resolve("bf16", CPU).name == "bf16"  # asked for: even without native support
    assert precision.resolve("bf16", CPU).dtype is torch.bfloat16 and precision.resolve("fp32", CPU).dtype is None
    with pytest.raises(ValueError, match="precision 'fp16'"):
        precision.resolve("fp16", CPU)


def test_auto_is_bf16_with_native_support(native_bf16: None) -> None:
    p = precision.resolve("auto", CPU, nn.Conv2d(4, 4, 3))
    assert p.name == "bf16" and p.reason == "auto: CPU with native bf16" and not p.needs_scaler


def test_auto_falls_back_to_fp32_without_the_capability(no_bf16: None) -> None:
    p = precision.resolve("auto", CPU, nn.Conv2d(4, 4, 3))
    assert p.name == "fp32" and "without native bf16" in p.reason
    assert precision.resolve("auto", CUDA, nn.Conv2d(4, 4, 3)).name == "fp32"


def test_auto_keeps_fp32_for_recurrent_and_untrainable_models(native_bf16: None) -> None:
    gru = nn.Sequential(nn.Linear(4, 4), nn.GRU(4, 4))
    assert precision.resolve("auto", CPU, gru).name == "fp32" and "recurrent" in precision.resolve("auto", CPU, gru).reason
    frozen = nn.Linear(2, 2).requires_grad_(False)
    assert precision.resolve("auto", CPU, frozen).name == "fp32"
    assert precision.resolve("bf16", CPU, gru).name == "bf16"  # asked for: the rule is auto's only


def test_cuda_keeps_the_legacy_amp_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda: True)
    conv = nn.Conv2d(1, 1, 1)
    assert precision.resolve("auto", CUDA, conv).name == "bf16"
    assert precision.resolve("auto", CUDA, conv, amp=False).name == "fp32"
    fp16 = precision.resolve("auto", CUDA, conv, amp_dtype="float16")
    assert fp16.name == "fp16" and fp16.needs_scaler and fp16.dtype is torch.float16
    assert precision.resolve("auto", CPU, conv, amp=False, amp_dtype="float16").name in ("bf16", "fp32")  # CPU ignores both


def test_the_capability_probe_reads_this_machine() -> None:
    flags = precision._cpuinfo_flags()
    if flags & set(precision.BF16_CPU_FLAGS):
        assert precision.cpu_has_native_bf16()
    assert precision._cpuinfo_flags("/no/such/file") == set()


def test_a_bf16_step_keeps_fp32_weights_gradients_and_optimiser_state() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(2, 4, 8, 8), torch.rand(2, 1, 8, 8)
    before = [p.detach().clone() for p in model.parameters()]
    with precision.Precision("bf16").autocast(CPU):
        out = model(x)
    assert out.dtype is torch.bfloat16
    loss = nn.functional.mse_loss(out.float(), y)
    assert loss.dtype is torch.float32
    loss.backward()
    opt.step()
    for p, b in zip(model.parameters(), before):
        assert p.dtype is torch.float32 and p.grad.dtype is torch.float32 and not torch.equal(p, b)
    for state in opt.state.values():
        assert state["exp_avg"].dtype is torch.float32 and state["exp_avg_sq"].dtype is torch.float32


def test_training_records_its_resolved_precision(tmp_path: Path, events_file: Path, no_bf16: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """auto on a CPU without bf16 trains in fp32 and says so in the log and the summary."""
    run = tmp_path / "auto"
    rc, out, err = cli(capsys, *train_args(events_file, run, "--epochs", "1"))
    assert rc == 0, err
    assert "precision: fp32 (auto: cpu without native bf16)" in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["precision"] == "fp32" and summary["eval_precision"] == "fp32"
    assert summary["precision_reason"] == "auto: cpu without native bf16"


def test_bf16_training_resumes_in_fp32_with_fp32_checkpoints(tmp_path: Path, events_file: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "mixed"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "1", "train.precision=bf16",
                                         "train.eval_precision=train"))
    assert rc == 0, err
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["eval_precision"] == "bf16"
    for name in (LAST, BEST):
        ck = read_checkpoint(run / name)
        assert {v.dtype for v in ck["model_state"].values() if v.is_floating_point()} == {torch.float32}
        assert {s["exp_avg"].dtype for s in ck["optimizer_state"]["state"].values()} == {torch.float32}
    rc, out, err = cli(capsys, *train_args(events_file, run, "--epochs", "2", "train.precision=fp32"))
    assert rc == 0, err
    assert "(resumed at epoch 1)" in out and "precision: fp32 (requested)" in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["precision"] == "fp32" and summary["epochs"] == 2
    assert read_checkpoint(run / LAST)["epoch"] == 2


IMAGE_MODELS = ("mlp", "cnn", "cnn_attn", "cnn_attn_code", "cnn3d", "unet", "unet_attn", "rnn", "calibrated",
                "residual_cnn")
GRAPH_MODELS = ("edgeconv", "edgeconv_dgcnn", "pfn", "calibrated_gnn", "residual_gnn")


def _one_step(name: str, repr_name: str, events_file: Path, prec: str, channels_last: bool) -> tuple[float, nn.Module]:
    """One optimisation step of preset ``name`` on 2 events in ``prec``; (loss, model)."""
    from pfgraph.io.root import EventFiles
    from pfgraph.models.registry import get
    from pfgraph.repr.base import fit_normalisation
    from pfgraph.repr.registry import get_representation
    from pfgraph.training.config import load_model_section
    from pfgraph.training.trainer import iter_batches

    section = load_model_section(name, repr_name)
    torch.manual_seed(0)
    model = get(section.arch, section.repr).builder(dict(section.params))
    files = EventFiles(events_file)
    idx = np.arange(2)
    norm = fit_normalisation(files, np.arange(40))
    if callable(getattr(model, "configure_from_data", None)):
        model.configure_from_data(files.meta, norm)
    if channels_last:
        precision.use_channels_last(model)
    rep = get_representation(section.repr)
    ds = rep.make_dataset(files, idx, norm)
    batch = next(iter_batches(rep, ds, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with precision.Precision(prec).autocast(CPU):
        out = rep.forward(model, batch)
    loss = nn.functional.mse_loss(out.float(), rep.target(batch).float())
    loss.backward()
    opt.step()
    return loss.item(), model


@pytest.mark.parametrize(("name", "repr_name"), [(m, "image") for m in IMAGE_MODELS] + [(m, "graph") for m in GRAPH_MODELS])
def test_every_model_trains_under_bf16_autocast(name: str, repr_name: str, events_file: Path) -> None:
    """Sigmoid x S heads, attention, 3-D convolutions, the GRU and the graph models all take a bf16
    step (channels-last where it applies) with a loss close to fp32's, and keep fp32 weights."""
    torch.set_num_threads(1)
    ref, _ = _one_step(name, repr_name, events_file, "fp32", channels_last=False)
    loss, model = _one_step(name, repr_name, events_file, "bf16", channels_last=True)
    assert np.isfinite(loss) and loss == pytest.approx(ref, rel=0.1, abs=1e-4)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_channels_last_applies_to_2d_convolutions_only() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))
    x = torch.rand(2, 4, 8, 8)
    ref = net(x)
    assert precision.use_channels_last(net)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    out = net(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref)  # a layout: the same values
    assert not precision.use_channels_last(nn.Sequential(nn.Conv3d(1, 1, 1)))
    assert not precision.use_channels_last(nn.Linear(2, 2))


def test_denormals_are_flushed_inside_the_block_only() -> None:
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a subnormal float32
    with precision.flush_denormal() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush denormals")
        with precision.flush_denormal():  # nested blocks keep it on until the outermost ends
            pass
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) != 0.0
