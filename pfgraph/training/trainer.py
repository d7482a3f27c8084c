"""One trainer for every model and representation.

The trainer only talks to a :class:`~pfgraph.repr.base.Representation` (datasets, batches,
forward, target), so image and point-cloud models train through the same loop:
configurable loss (MSE by default), Adam, ReduceLROnPlateau on the *validation* loss (or a
cosine schedule over the epoch cap, ``train.scheduler.kind``), the best-on-validation
checkpoint, early stopping, a fixed split seed, the paper's progressive
training-set schedule, ``train.precision`` (bf16 autocast on CPUs and GPUs with native bf16,
:mod:`pfgraph.training.precision`), and DDP when started by torchrun.

Run folder: ``checkpoint_last.pt`` (after every epoch), ``checkpoint_best.pt`` (best
validation loss), ``config.yaml`` (fully resolved), ``metrics.csv``, ``loss.png`` and
``train_summary.json``. Each epoch's ``metrics.csv`` row also holds a physics figure of the
validation set, ``val_half_width``: the 68 % half-width of the per-pixel residual
r = (E_pred - E_true) / E_true over the truth pixels of the grid (the evaluation's
:func:`pfgraph.eval.energy.robust_stats` on the evaluation's truth grid), the epoch's wall
time and the run's cumulative training FLOPs (``train_flops``, :mod:`pfgraph.training.flops`). ``train_summary.json`` records the per-epoch history and the run's budget status
(:mod:`pfgraph.utils.budget`). Every file is written atomically and ``checkpoint_last.pt`` is written
last, so a run killed at any moment resumes from its last complete epoch. Checkpoints hold only
tensors and plain data (``torch.load(weights_only=True)``) and, for the same seed on the same
machine, are byte-identical between runs (timings live in ``metrics.csv``, not in checkpoints).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from pfgraph.config import to_dict
from pfgraph.errors import DataError, PfgraphError
from pfgraph.io.datasets import BlockBatchSampler
from pfgraph.io.identity import config_hash
from pfgraph.io.metrics_csv import read_metrics_csv, write_metrics_csv
from pfgraph.io.root import EventFiles
from pfgraph.models.registry import ModelEntry, get
from pfgraph.repr.base import Normalisation, Representation, fit_normalisation
from pfgraph.repr.registry import get_representation
from pfgraph.training import ddp, flops, precision
from pfgraph.training.config import RunConfig, TrainConfig
from pfgraph.training.reweight import TargetWeights
from pfgraph.training.run_folder import (
    BEST,
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CONFIG,
    LAST,
    LOSS_PNG,
    METRICS,
    SUMMARY,
    data_fingerprint,
    resolve_device,
    save_checkpoint,
)
from pfgraph.utils import budget
from pfgraph.utils.atomic import atomic_path, atomic_write_text
from pfgraph.utils.ownership import PNG_METADATA, text_marker
from pfgraph.utils.progress import progress

#: A validation loss this many times the best one so far stops the run as exploded.
EXPLODE_FACTOR = 1.0e4


# ------------------------------------------------------------------------------ small pieces


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class LogMSELoss(nn.Module):
    """Mean (or sum) of ``(log(1 + pred / eps) - log(1 + target / eps))^2`` on normalised energies.

    A 10 % error costs about the same at 1 GeV as at 100 GeV (for E >> eps), as in the relative
    residual r the evaluation ranks by; plain MSE is dominated by the largest pixels and rewards
    shrinking them towards the training mean. Predictions below zero are taken as zero.
    """

    def __init__(self, eps: float, reduction: str = "mean") -> None:
        super().__init__()
        self.eps, self.reduction = float(eps), reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = torch.log1p(pred.clamp(min=0.0) / self.eps) - torch.log1p(target.clamp(min=0.0) / self.eps)
        sq = d * d
        if self.reduction == "none":
            return sq
        return sq.sum() if self.reduction == "sum" else sq.mean()


def make_loss(cfg: TrainConfig, reduction: str = "mean", weights: TargetWeights | None = None,
              target_scale: float | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The configured loss (``mse`` | ``l1`` | ``huber`` | ``log_mse`` | ``rel_huber`` | ``mixed_mse``) with ``reduction``;
    with ``weights`` (``train.reweight``), each element's loss times its target's weight.
    ``target_scale``: S in GeV, which ``rel_huber`` (computed in GeV) needs."""
    if weights is not None:
        elementwise = make_loss(cfg, reduction="none", target_scale=target_scale)

        def weighted(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            loss = elementwise(pred, target) * weights(target)
            return loss.sum() if reduction == "sum" else loss.mean()
        return weighted
    if cfg.loss == "mse":
        return nn.MSELoss(reduction=reduction)
    if cfg.loss == "l1":
        return nn.L1Loss(reduction=reduction)
    if cfg.loss == "log_mse":
        return LogMSELoss(cfg.log_eps, reduction)
    if cfg.loss == "rel_huber":
        from pfgraph.training.losses import RelativeHuberLoss

        if target_scale is None:
            raise PfgraphError("train.loss=rel_huber needs the target scale S (the loss is computed in GeV)")
        return RelativeHuberLoss(cfg.rel_eps_gev, cfg.rel_delta, cfg.empty_weight, target_scale, reduction)
    if cfg.loss == "mixed_mse":
        from pfgraph.training.paper_losses import MixedMSELoss

        return MixedMSELoss(cfg.wmse_weight, cfg.ssim_weight, reduction)
    return nn.HuberLoss(reduction=reduction, delta=cfg.huber_delta)


def split_indices(n: int, fractions: list[float], seed: int) -> dict[str, np.ndarray]:
    """Fixed random split of events 0..n-1 into train/val/test (8000/1000/1000 of 10 000).

    Indices come in the split's random order (a progressive stage takes the first N of
    ``train``); the permutation depends only on ``n`` and ``seed``.
    """
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    n_val = min(n_val, n - n_train)
    if n_train < 1 or n_val < 1:
        raise DataError(f"{n} events are too few for a train/validation split {fractions} "
                        "(need at least one event in each; use more events)")
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}


def stage_events(cfg: TrainConfig, epoch: int, n_train: int) -> int:
    """Training-set size of 0-based ``epoch`` under the progressive schedule."""
    stage = epoch // cfg.stage_epochs
    if stage < len(cfg.schedule):
        return min(cfg.schedule[stage], n_train)
    return n_train


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(entry: ModelEntry, params: Mapping[str, Any], seed: int) -> nn.Module:
    """Build a registered model with a seeded initialisation."""
    torch.manual_seed(seed)
    return entry.builder(dict(params))


def num_events(batch: Any) -> int:
    """Events in a batch (``.num_events``, or torch-geometric's ``num_graphs``)."""
    n = getattr(batch, "num_events", None)
    if n is None:
        n = getattr(batch, "num_graphs", None)
    if n is None:
        raise PfgraphError(f"batch of type {type(batch).__name__} has no num_events")
    return int(n)


def plot_loss(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Training and validation loss per epoch (log scale) -> PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="training")
    ax.plot(epochs, [r["val_loss"] for r in rows], "s-", label="validation")
    best = [r for r in rows if r["best"]]
    if best:
        b = min(best, key=lambda r: r["val_loss"])
        ax.axvline(b["epoch"], color="grey", ls=":", label=f"best (epoch {b['epoch']})")
    if rows and min(min(r["train_loss"], r["val_loss"]) for r in rows) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised units)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        fig.savefig(f, format="png", metadata=PNG_METADATA)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """The configured learning-rate schedule (``train.scheduler.kind``), stepped once per epoch.

    ``plateau``: ReduceLROnPlateau on the validation loss. ``cosine``: epoch e (0-based) trains at
    ``lr * (e + 1) / (warmup_epochs + 1)`` during the warm-up, then at
    ``min_lr + (lr - min_lr) * (1 + cos(pi * (e - w) / (epochs - w))) / 2``, w the warm-up epochs:
    from ``lr`` down towards ``min_lr`` at the epoch cap.
    """
    sc = cfg.scheduler
    if sc.kind == "cosine":
        # A plain function, not a callable object: its settings stay out of the checkpoint, so a
        # resumed run anneals over its current epoch cap (train.epochs may change on resume).
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: cosine_factor(e, cfg.lr, sc.min_lr, sc.warmup_epochs, cfg.epochs))
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=sc.factor, patience=sc.patience,
                                                      threshold=sc.threshold, min_lr=sc.min_lr)


def cosine_factor(e: int, lr: float, min_lr: float, warmup: int, epochs: int) -> float:
    """The cosine schedule's factor on ``lr`` for 0-based epoch ``e`` (see :func:`make_scheduler`)."""
    import math

    if e < warmup:
        return (e + 1) / (warmup + 1)
    span = max(epochs - warmup, 1)
    t = min(max(e - warmup, 0), span) / span
    floor = min(min_lr / lr, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def validation_half_width(residuals: list[np.ndarray]) -> float:
    """The 68 % half-width of the per-pixel residuals r collected over the validation set (the
    evaluation's :func:`pfgraph.utils.stats.robust_stats`); NaN without truth pixels."""
    from pfgraph.utils.stats import robust_stats

    r = np.concatenate(residuals) if residuals else np.zeros(0, np.float32)
    hw = robust_stats(r, None)["half_width_68"]
    return float("nan") if hw is None else float(hw)


class _NoBar:
    """Stands in for a progress bar on ranks other than 0."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int) -> None:
        """Ignore."""

    def set_postfix(self, *a: Any, **kw: Any) -> None:
        """Ignore."""


# ------------------------------------------------------------------------------ the trainer


@dataclass
class TrainResult:
    """What a training call did."""

    run_dir: Path
    model_name: str
    repr: str
    params: int
    epochs: int
    target_epochs: int
    best_epoch: int
    best_val_loss: float
    train_time_s: float
    events_per_s: float
    n_train: int
    resumed_from: int | None
    new_epochs: int
    stopped_early: bool
    #: The budget status (:mod:`pfgraph.utils.budget`).
    status: str = ""

    def summary_line(self) -> str:
        """The one-line summary the CLI prints."""
        resumed = f" (resumed at epoch {self.resumed_from})" if self.resumed_from is not None else ""
        stop = ", stopped early" if self.stopped_early else ""
        if self.status in (budget.HIT_CAP, budget.STILL_IMPROVING):
            stop = f", {self.status}"
        rate = f", {self.events_per_s:.0f} events/s" if self.events_per_s > 0 else ""
        return (f"train: {self.model_name} ({self.repr}, {self.params:,} params) {self.epochs}/{self.target_epochs} "
                f"epochs{resumed}{stop} on {self.n_train} events in {self.train_time_s:.1f} s{rate}; best val loss "
                f"{self.best_val_loss:.4g} at epoch {self.best_epoch} -> {self.run_dir / BEST}")


class Trainer:
    """Trains ``cfg``'s model on ``files`` into ``run_dir`` (resuming from ``resume`` if given)."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path, files: EventFiles, info: ddp.DistInfo | None = None,
                 resume: Mapping[str, Any] | None = None, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.files = files
        self.info = info or ddp.DistInfo()
        self.resume = resume
        self.target_weights: TargetWeights | None = None
        self.target_scale: float | None = None  # S in GeV, set once the normalisation is fitted
        self.log = log if self.info.is_main else (lambda _msg: None)
        self.entry = get(cfg.model.arch, cfg.model.repr)
        self.repr: Representation = get_representation(cfg.model.repr, **cfg.data.representation_options())
        self.device = resolve_device(cfg.train.device, self.info)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        # train.precision before the model exists; run() resolves it again for the model
        self.precision = precision.resolve(cfg.train.precision, self.device, amp=cfg.train.amp,
                                           amp_dtype=cfg.train.amp_dtype)
        self.eval_precision = self.precision if cfg.train.eval_precision == "train" else precision.FP32
        self.flop_meter = flops.FlopMeter()
        self.channels_last = False

    # -- data ------------------------------------------------------------------------------

    def _set_precision(self, model: nn.Module) -> None:
        """Resolve ``train.precision`` for ``model`` (:func:`pfgraph.training.precision.resolve`) and
        put a model with only 2-D convolutions in the channels-last layout (``train.channels_last``)."""
        tcfg = self.cfg.train
        self.precision = precision.resolve(tcfg.precision, self.device, model, amp=tcfg.amp, amp_dtype=tcfg.amp_dtype)
        self.eval_precision = self.precision if tcfg.eval_precision == "train" else precision.FP32
        self.channels_last = bool(tcfg.channels_last) and precision.use_channels_last(model)
        self.log(f"precision: {self.precision.name} ({self.precision.reason}), validation "
                 f"{self.eval_precision.name}{', channels-last layout' if self.channels_last else ''}")

    def _check_branches(self) -> None:
        check_branches(self.files, self.repr.branches(self.cfg.data.target), f"the {self.cfg.model.repr} representation")

    def _events(self) -> int:
        n = self.files.num_events
        if self.cfg.data.max_events is not None:
            n = min(n, self.cfg.data.max_events)
        return n

    def _rank_share(self, idx: np.ndarray, equal: bool) -> np.ndarray:
        """This rank's events of ``idx`` (equal counts on every rank when ``equal``)."""
        if not self.info.enabled:
            return idx
        share = idx[self.info.rank::self.info.world]
        return share[:len(idx) // self.info.world] if equal else share

    def _loader(self, dataset: Any, sampler: BlockBatchSampler) -> torch.utils.data.DataLoader:
        workers = self.cfg.train.num_workers
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=self.repr.collate,
                                           num_workers=workers, pin_memory=self.device.type == "cuda",
                                           persistent_workers=False)

    # -- loops -----------------------------------------------------------------------------

    def _autocast(self, training: bool = True) -> contextlib.AbstractContextManager[Any]:
        """Autocast for a forward pass in the training (or validation) precision."""
        return (self.precision if training else self.eval_precision).autocast(self.device)

    def evaluate(self, model: nn.Module, dataset: Any, residuals: list[np.ndarray] | None = None) -> float:
        """Mean loss over ``dataset`` (all ranks' shares together); with a ``residuals`` list, the
        per-pixel residuals r = (pred - truth) / truth over the truth pixels of the grid (every
        rank's) are appended to it."""
        loss_fn = make_loss(self.cfg.train, reduction="sum", weights=self.target_weights, target_scale=self.target_scale)
        cone = self._cone_loss()
        sampler = BlockBatchSampler(len(dataset), self.cfg.train.eval_batch_size, shuffle=False,
                                    block_size=getattr(dataset, "block_size", None))
        total, count, cone_total, events = 0.0, 0.0, 0.0, 0.0
        model.eval()
        with torch.no_grad():
            for batch in self._loader(dataset, sampler) if len(dataset) else []:
                batch = batch.to(self.device)
                with self._autocast(training=False):
                    out = self.repr.forward(model, batch)
                target = self.repr.target(batch)
                total += float(loss_fn(out.float(), target.float()))
                count += target.numel()
                if cone is None and residuals is None:
                    continue
                truth = self.repr.truth_grid(batch).float()  # once per batch for both uses below
                pred = self.repr.to_grid(out.float(), batch).float()
                if cone is not None:
                    n = num_events(batch)
                    cone_total += float(cone(pred, truth)) * n
                    events += n
                if residuals is not None:
                    has = truth > 0
                    residuals.append(((pred[has] - truth[has]) / truth[has]).cpu().numpy())
        total, count, cone_total, events = ddp.all_sum(self.info, [total, count, cone_total, events], self.device)
        if residuals is not None and self.info.enabled:
            import torch.distributed as dist

            parts: list[Any] = [None] * self.info.world
            dist.all_gather_object(parts, np.concatenate(residuals) if residuals else np.zeros(0, np.float32))
            residuals[:] = parts
        cone_term = self.cfg.train.cone_weight * cone_total / events if events else 0.0
        return total / max(count, 1.0) + cone_term

    def _cone_loss(self) -> Any:
        """The cone-sum term of the loss (:class:`~pfgraph.training.losses.ConeSumLoss`) on the data's
        grid, or None with ``train.cone_weight`` 0."""
        cfg = self.cfg.train
        if cfg.cone_weight <= 0:
            return None
        if self.target_scale is None:
            raise PfgraphError("train.cone_weight needs the target scale S (the cone term is computed in GeV)")
        from pfgraph.training.losses import ConeSumLoss

        return ConeSumLoss(self.files.grid, cfg.cone_radius, cfg.cone_min_gev, cfg.rel_eps_gev, cfg.rel_delta,
                           self.target_scale).to(self.device)

    def _target_weights(self, dataset: Any) -> TargetWeights | None:
        """``train.reweight``'s weights from the targets of ``dataset`` (the training split; the
        validation split for a run that trains no more), summed over the processes."""
        tcfg = self.cfg.train
        if tcfg.reweight == "none":
            return None
        targets = (self.repr.target(b) for b in iter_batches(self.repr, dataset, tcfg.eval_batch_size))
        weights = TargetWeights.flat_log(
            targets, tcfg.reweight_bins_per_decade, tcfg.reweight_max,
            reduce=(lambda c: torch.tensor(ddp.all_sum(self.info, c.tolist(), self.device), dtype=torch.float64))
            if self.info.enabled else None)
        d = weights.describe()
        self.log(f"train.reweight = flat_log: {d['bins']} bins of log10(E/S) in {d['log10_range']}, weights "
                 f"{d['min_weight']:.3g} to {d['max_weight']:.3g}")
        return weights

    def _train_epoch(self, model: nn.Module, opt: torch.optim.Optimizer, scaler: Any, dataset: Any,
                     positions: np.ndarray, epoch: int) -> tuple[float, int, float]:
        """One pass; returns (mean loss, events seen by all ranks, seconds)."""
        cfg = self.cfg.train
        loss_fn = make_loss(cfg, weights=self.target_weights, target_scale=self.target_scale)
        cone = self._cone_loss()
        sampler = BlockBatchSampler(len(dataset), cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch,
                                    block_size=getattr(dataset, "block_size", None), subset=positions)
        model.train()
        total, seen = 0.0, 0
        params = [p for p in model.parameters() if p.requires_grad]
        t0 = time.perf_counter()
        n_all = len(positions) * self.info.world
        bar_cm = progress(n_all, f"epoch {epoch + 1}/{cfg.epochs}") if self.info.is_main else _NoBar()
        with bar_cm as bar, self.flop_meter.epoch() as meter:
            for step, batch in enumerate(self._loader(dataset, sampler)):
                batch = batch.to(self.device, non_blocking=True)
                meter.start(*flops.step_key(num_events(batch), self.repr.target(batch)))
                with self._autocast():
                    out = self.repr.forward(model, batch)
                loss = loss_fn(out.float(), self.repr.target(batch).float())
                if cone is not None:
                    loss = loss + cfg.cone_weight * cone(self.repr.to_grid(out.float(), batch).float(),
                                                         self.repr.truth_grid(batch).float())
                if not torch.isfinite(loss):
                    raise PfgraphError(f"training diverged: the loss is {float(loss)} at epoch {epoch + 1}, step "
                                       f"{step + 1} (try a lower train.lr)")
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if cfg.grad_clip > 0:
                        scaler.unscale_(opt)
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    opt.step()
                meter.stop()
                n = num_events(batch)
                total += loss.item() * n
                seen += n
                bar.update(n * self.info.world)
                bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        total, seen_all = ddp.all_sum(self.info, [total, float(seen)], self.device)
        return total / max(seen_all, 1.0), int(seen_all), dt

    def _check_val_loss(self, val_loss: float, epoch: int, best_val: float, best_epoch: int) -> None:
        """Stop with one clear line when the validation loss is NaN/Inf or has exploded.

        Such a loss means corrupt data or a diverged model; carrying on would keep (or, with no
        finite loss yet, claim) a best checkpoint that means nothing.
        """
        import math

        kept = (f"{BEST} keeps epoch {best_epoch} (val loss {best_val:.4g})" if math.isfinite(best_val)
                and best_epoch > 0 else f"no {BEST} was written")
        if not math.isfinite(val_loss):
            raise PfgraphError(f"{self.run_dir}: validation loss is {val_loss} at epoch {epoch}: training stopped, "
                               f"{kept}; check the data with 'pfgraph inspect' or lower train.lr")
        if math.isfinite(best_val) and best_val > 0 and val_loss > EXPLODE_FACTOR * best_val:
            raise PfgraphError(f"{self.run_dir}: validation loss exploded to {val_loss:.4g} at epoch {epoch} "
                               f"({val_loss / best_val:.3g} times the best): training stopped, {kept}; "
                               "lower train.lr or check the data with 'pfgraph inspect'")

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train (or resume) to ``cfg.train.epochs`` epochs; returns what was done. Denormals are
        flushed to zero meanwhile (:func:`pfgraph.training.precision.flush_denormal`)."""
        with precision.flush_denormal():
            return self._run()

    def _run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        tcfg = cfg.train
        self._check_branches()
        n = self._events()
        resume = self.resume
        if resume is not None:
            split = {k: np.asarray(v.numpy(), dtype=np.int64) for k, v in resume["split"].items()}
            norm = Normalisation.from_dict(resume["normalisation"])
        else:
            split = split_indices(n, cfg.data.split, cfg.data.split_seed)
            norm = fit_normalisation(self.files, split["train"], cfg.data.target)
        seed_everything(tcfg.seed)
        model = build_model(self.entry, cfg.model.params, tcfg.seed)
        configure = getattr(model, "configure_from_data", None)
        if callable(configure):
            configure(self.files.meta, norm)
        if resume is not None:
            try:
                model.load_state_dict(resume["model_state"])
            except (RuntimeError, KeyError) as exc:
                raise PfgraphError(f"{self.run_dir / LAST}: does not fit model '{cfg.model.name}' with this "
                                   f"config ({str(exc).splitlines()[0][:160]})") from None
        model.to(self.device)
        n_params = count_parameters(model)
        self._set_precision(model)
        trainable = self.entry.trainable and n_params > 0

        start_epoch = int(resume["epoch"]) if resume is not None else 0
        bad_before = int(resume.get("bad_epochs", 0)) if resume is not None else 0
        will_train = (trainable and start_epoch < tcfg.epochs
                      and not (tcfg.early_stop.patience > 0 and bad_before >= tcfg.early_stop.patience))
        # Datasets get sorted global indices (item i is event indices[i]); a rank keeps its share.
        train_sorted = np.sort(self._rank_share(split["train"], equal=False))
        val_sorted = np.sort(self._rank_share(np.sort(split["val"]), equal=False))
        t_load = time.perf_counter()
        train_ds = self.repr.make_dataset(self.files, train_sorted, norm) if will_train else None
        val_ds = self.repr.make_dataset(self.files, val_sorted, norm)
        t_load = time.perf_counter() - t_load
        self.target_scale = float(norm.target_scale)  # S in GeV, for losses computed in GeV
        self.target_weights = self._target_weights(train_ds if train_ds is not None else val_ds)

        opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay) if trainable else None
        sched = make_scheduler(opt, tcfg) if opt is not None else None
        scaler = torch.amp.GradScaler("cuda") if self.precision.needs_scaler and trainable else None
        best_val, best_epoch, bad_epochs = float("inf"), 0, 0
        if resume is not None:
            best_val, best_epoch = float(resume["best_val"]), int(resume["best_epoch"])
            bad_epochs = int(resume.get("bad_epochs", 0))
            if opt is not None and resume.get("optimizer_state") is not None:
                opt.load_state_dict(resume["optimizer_state"])
                sched.load_state_dict(resume["scheduler_state"])
            if scaler is not None and resume.get("scaler_state"):
                scaler.load_state_dict(resume["scaler_state"])
            if resume.get("rng") is not None:
                torch.set_rng_state(resume["rng"]["torch"])
        rows = read_metrics_csv(self.run_dir / METRICS, start_epoch) if info.is_main else []
        if info.is_main:
            atomic_write_text(self.run_dir / CONFIG, text_marker("train") + ": the resolved run config\n"
                              + yaml.safe_dump(to_dict(cfg), sort_keys=False))

        train_model: nn.Module = model
        if info.enabled and trainable:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                                  else None)

        from pfgraph.io.identity import dataset_identity, detector_config

        data_identity, detector = dataset_identity(self.files), detector_config(self.files.meta)

        def checkpoint(epoch: int) -> dict[str, Any]:
            return {
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "model_name": cfg.model.name, "arch": cfg.model.arch, "repr": cfg.model.repr,
                "params": n_params,
                "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer_state": opt.state_dict() if opt is not None else None,
                "scheduler_state": sched.state_dict() if sched is not None else None,
                "scaler_state": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch, "best_val": best_val, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "normalisation": norm.to_dict(), "config": to_dict(cfg),
                "split": {k: torch.tensor(np.asarray(v), dtype=torch.int64) for k, v in split.items()},  # own storage
                "rng": {"torch": torch.get_rng_state()},
                "data": {"num_events": int(n), "files": [str(p.resolve()) for p in self.files.paths],
                         "fingerprint": data_fingerprint(self.files), "identity": data_identity,
                         "detector": detector},  # what pfgraph predict checks new data against
            }

        new_epochs = 0
        stopped = tcfg.early_stop.patience > 0 and bad_epochs >= tcfg.early_stop.patience
        if resume is None and (not trainable or tcfg.epochs == 0):
            # Nothing to optimise (analytic baseline, or --epochs 0): evaluate and save as is.
            best_val, best_epoch = self.evaluate(model, val_ds), 0
            self._check_val_loss(best_val, 0, float("inf"), 0)
            if info.is_main:
                ck = checkpoint(0)
                save_checkpoint(ck, self.run_dir / BEST)
                save_checkpoint(ck, self.run_dir / LAST)
            self.log(f"{cfg.model.name}: nothing to train ({'not trainable' if not trainable else '0 epochs'}); "
                     f"validation loss {best_val:.4g}")
        epoch = start_epoch
        while trainable and epoch < tcfg.epochs and not stopped:
            size = stage_events(tcfg, epoch, len(split["train"]))
            stage = split["train"][:size]
            mine = self._rank_share(stage, equal=True)
            positions = np.searchsorted(train_sorted, mine)
            t_epoch = time.perf_counter()
            train_loss, seen, dt = self._train_epoch(train_model, opt, scaler, train_ds, positions, epoch)
            epoch_flops = ddp.all_sum(info, [self.flop_meter.epoch_flops], self.device)[0]
            residuals: list[np.ndarray] = []
            val_loss = self.evaluate(model, val_ds, residuals)
            half_width = validation_half_width(residuals)
            self._check_val_loss(val_loss, epoch + 1, best_val, best_epoch)
            if tcfg.scheduler.kind == "plateau":
                sched.step(val_loss)
            else:
                sched.step()
            improved = val_loss < best_val - tcfg.early_stop.min_delta
            if improved:
                best_val, best_epoch, bad_epochs = val_loss, epoch + 1, 0
            else:
                bad_epochs += 1
            epoch += 1
            new_epochs += 1
            stopped = tcfg.early_stop.patience > 0 and bad_epochs >= tcfg.early_stop.patience
            if info.is_main:
                row = {"epoch": epoch, "stage_events": size, "train_loss": train_loss, "val_loss": val_loss,
                       "lr": float(opt.param_groups[0]["lr"]), "best": int(improved), "epoch_time_s": dt,
                       "train_events_per_s": seen / dt if dt > 0 else 0.0, "val_half_width": half_width,
                       "wall_s": 0.0}
                flops.add_epoch(rows, row, epoch_flops, seen)
                rows.append(row)
                ck = checkpoint(epoch)
                if improved:
                    save_checkpoint(ck, self.run_dir / BEST)
                plot_loss(self.run_dir / LOSS_PNG, rows, f"{cfg.model.name} ({cfg.model.repr})")
                row["wall_s"] = time.perf_counter() - t_epoch  # training, validation, checkpoints, plot
                write_metrics_csv(self.run_dir / METRICS, rows)
                save_checkpoint(ck, self.run_dir / LAST)  # the commit point of this epoch
                self.log(f"epoch {epoch}/{tcfg.epochs}: train {train_loss:.4g}, val {val_loss:.4g}"
                         f"{' (best)' if improved else ''}, val r half-width {half_width:.4g}, {seen / dt:.0f} "
                         f"events/s, lr {opt.param_groups[0]['lr']:.3g}")
            ddp.barrier(info)
        if stopped and new_epochs:
            self.log(f"early stop: no improvement for {bad_epochs} epochs")
        train_time = sum(r["epoch_time_s"] for r in rows)
        events = sum(r["train_events_per_s"] * r["epoch_time_s"] for r in rows)
        done_epochs = epoch if trainable else 0
        result = TrainResult(
            run_dir=self.run_dir, model_name=cfg.model.name, repr=cfg.model.repr, params=n_params,
            epochs=done_epochs, target_epochs=tcfg.epochs if trainable else 0, best_epoch=best_epoch,
            best_val_loss=best_val, train_time_s=train_time, events_per_s=events / train_time if train_time > 0 else 0.0,
            n_train=len(split["train"]), resumed_from=start_epoch if resume is not None else None,
            new_epochs=new_epochs, stopped_early=stopped,
            status=budget.budget_status([r["val_loss"] for r in rows], done_epochs, tcfg.epochs if trainable else 0,
                                        stopped, trainable))
        if info.is_main:
            self._write_summary(result, split, t_load, rows)
        ddp.barrier(info)
        return result

    def _write_summary(self, r: TrainResult, split: Mapping[str, np.ndarray], t_load: float,
                       rows: list[dict[str, Any]]) -> None:
        import hashlib

        best = self.run_dir / BEST
        sha = hashlib.sha256(best.read_bytes()).hexdigest() if best.exists() else ""
        summary = {
            "model": r.model_name, "arch": self.cfg.model.arch, "repr": r.repr, "params": r.params,
            "epochs": r.epochs, "target_epochs": r.target_epochs, "best_epoch": r.best_epoch,
            "best_val_loss": r.best_val_loss, "stopped_early": r.stopped_early,
            "train_time_s": round(r.train_time_s, 3), "events_per_s": round(r.events_per_s, 2),
            "data_load_s": round(t_load, 3), "device": str(self.device), "world_size": self.info.world,
            "n_train": len(split["train"]), "n_val": len(split["val"]), "n_test": len(split["test"]),
            "seed": self.cfg.train.seed,
            "data": [str(p) for p in self.files.paths], "checkpoint": BEST, "checkpoint_sha256": sha,
            "config_sha256": config_hash(to_dict(self.cfg)), "data_fingerprint": data_fingerprint(self.files),
        }
        summary.update(training_record(rows, r.epochs, r.target_epochs, r.stopped_early,
                                       self.entry.trainable and r.params > 0, t_load))
        summary["scheduler"] = self.cfg.train.scheduler.kind
        summary.update(precision=self.precision.name, precision_reason=self.precision.reason,
                       eval_precision=self.eval_precision.name, channels_last=self.channels_last)
        atomic_write_text(self.run_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")


def training_record(rows: list[dict[str, Any]], epochs: int, cap: int, stopped_early: bool, trained: bool,
                    data_load_s: float = 0.0) -> dict[str, Any]:
    """What ``train_summary.json`` records about the course of a run: its per-epoch ``history``,
    its budget ``status`` with the ``status_rule`` (:mod:`pfgraph.utils.budget`), the validation
    residual half-width at the best epoch, and its ``wall_time_s`` (data loading plus every
    epoch's training, validation and writing; epochs of a metrics.csv without ``wall_s`` count
    their training time)."""
    import math

    def plain(x: Any) -> Any:
        return None if isinstance(x, float) and not math.isfinite(x) else x

    history = {k: [plain(r[k]) for r in rows] for k in budget.HISTORY_FIELDS}
    wall = sum(r["wall_s"] if math.isfinite(r["wall_s"]) else r["epoch_time_s"] for r in rows) + data_load_s
    best = [r for r in rows if r["best"]]
    best_hw = plain(best[-1]["val_half_width"]) if best else None
    status = budget.budget_status([r["val_loss"] for r in rows], epochs, cap, stopped_early, trained)
    return {"status": status, "status_rule": budget.RULE, "wall_time_s": round(wall, 3),
            "best_val_half_width": best_hw, "train_flops": flops.total(rows), "history": history}


def check_branches(files: EventFiles, branches: list[str], who: str) -> None:
    """One DataError line when a file lacks a branch that ``who`` needs (schema migrations honoured)."""
    from pfgraph.io import schema
    from pfgraph.io.reading import stored_branches
    from pfgraph.io.root import check_tree, open_root

    for i, path in enumerate(files.paths):
        layout = files.layouts[i] if hasattr(files, "layouts") else "dense"
        # a sparse-first file holds an image as its sparse source, which the reader rebuilds it from
        specs = [schema.EVENT_BRANCH_MAP[b] for b in stored_branches(branches, layout) if b in schema.EVENT_BRANCH_MAP]
        tree = open_root(path)[schema.EVENTS_TREE]
        mig = files.migrations[i] if hasattr(files, "migrations") else None
        try:
            check_tree(tree, path, specs, mig, require=[s.name for s in specs], size=files.grid.size)
        except DataError as exc:
            raise DataError(f"{exc} (needed by {who})") from None


def iter_batches(repr_: Representation, dataset: Any, batch_size: int) -> Iterator[Any]:
    """Batches of ``dataset`` in order (no workers)."""
    sampler = BlockBatchSampler(len(dataset), batch_size, shuffle=False, block_size=getattr(dataset, "block_size", None))
    if len(dataset) == 0:
        return
    yield from torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=repr_.collate)
