"""Training precision (``train.precision``: ``fp32`` | ``bf16`` | ``auto``) and denormal flushing.

``bf16`` runs each forward pass under ``torch.autocast(device_type, dtype=torch.bfloat16)``; the
backward pass follows the forward's dtypes, the weights stay fp32 ("master weights": autocast casts
a copy of each weight per op, the parameters and their gradients are fp32), the loss is computed in
fp32 on ``output.float()``, and Adam's state is fp32. Checkpoints therefore hold fp32 tensors
whatever the precision, load unchanged, and a run may resume in another precision.

``auto`` resolves, per run, by :func:`resolve`:

* on a CUDA device: ``bf16`` where ``torch.cuda.is_bf16_supported()``, else ``fp32``;
* on the CPU: ``bf16`` where the CPU computes bf16 natively (:func:`cpu_has_native_bf16`:
  AVX512-BF16 or AMX), else ``fp32``;
* ``fp32`` for a model with recurrent layers (``torch.nn.RNNBase``, the ``rnn``): a GRU gains
  about 1.1x from bf16 on a CPU (issue 27's probe) against 1.9-2x for convolutions, and its
  hidden state would be carried through G (the grid size) steps in bf16;
* ``fp32`` for a model without trainable parameters (nothing to speed up).

The legacy CUDA keys keep their meaning: ``train.amp: false`` means fp32 on CUDA, and
``train.amp_dtype: float16`` turns a CUDA bf16 precision into float16 autocast with a gradient
scaler. On the CPU both keys are ignored (as before).

Denormal floats are flushed to zero (``torch.set_flush_denormal(True)``) while training and
predicting (:func:`flush_denormal`): subnormal activations of a few tiny pixels otherwise cost
slow microcode paths on x86 and change no figure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

PrecisionName = Literal["fp32", "bf16", "auto"]
#: The values ``train.precision`` takes.
PRECISIONS = ("fp32", "bf16", "auto")
#: The values ``train.eval_precision`` takes: ``fp32`` (default) or ``train`` (the run's precision).
EVAL_PRECISIONS = ("fp32", "train")
#: CPU flags that mean native bf16 arithmetic (``/proc/cpuinfo``).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: The rule of :func:`resolve` in one line (recorded with a run's resolved precision).
AUTO_RULE = ("auto: bf16 on a CUDA device with bf16 support or a CPU with native bf16 (AVX512-BF16 or AMX), "
             "except for recurrent models (GRU/LSTM: little gain) and untrainable ones; fp32 otherwise")


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        text = Path(path).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX), as torch reports it
    (``torch._C._cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``) or, where torch
    does not say, as ``/proc/cpuinfo``'s flags do. Tests monkeypatch this function."""
    probe = getattr(torch._C, "_cpu", None)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(probe, name, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                if fn():
                    return True
    return bool(_cpuinfo_flags() & set(BF16_CPU_FLAGS))


def cuda_has_bf16() -> bool:
    """True when the current CUDA device supports bf16 (``torch.cuda.is_bf16_supported()``)."""
    try:
        return torch.cuda.is_available() and bool(torch.cuda.is_bf16_supported())
    except Exception:  # a broken driver is no bf16
        return False


def is_recurrent(model: nn.Module | None) -> bool:
    """True when ``model`` has a recurrent layer (``torch.nn.RNNBase``: RNN, GRU, LSTM)."""
    return model is not None and any(isinstance(m, nn.RNNBase) for m in model.modules())


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` (``fp32``, ``bf16``, or ``fp16`` for the legacy CUDA
    ``train.amp_dtype: float16``) and why it was chosen (``reason``)."""

    name: str
    reason: str = ""

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None: no autocast)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def needs_scaler(self) -> bool:
        """float16 needs a gradient scaler (bf16 has fp32's exponent range and does not)."""
        return self.name == "fp16"

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The autocast context for a forward pass on ``device`` (a null context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


FP32 = Precision("fp32", "requested")


def resolve(requested: str, device: torch.device, model: nn.Module | None = None, *, amp: bool = True,
            amp_dtype: str = "bfloat16") -> Precision:
    """``train.precision`` on ``device`` for ``model`` (None: before the model exists) -> the
    :class:`Precision` to train in, by the module's rule (:data:`AUTO_RULE`)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision '{requested}': expected one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if requested == "fp32":
        return Precision("fp32", "requested")
    if cuda and not amp:
        return Precision("fp32", "train.amp is false")
    low = "fp16" if cuda and amp_dtype == "float16" else "bf16"
    if requested == "bf16":
        return Precision(low, "requested" if low == "bf16" else "requested; train.amp_dtype float16 on CUDA")
    if model is not None and not any(p.requires_grad for p in model.parameters()):
        return Precision("fp32", "auto: nothing to train")
    if is_recurrent(model):
        return Precision("fp32", "auto: recurrent model (bf16 gains little for a GRU/LSTM)")
    if cuda:
        if low == "fp16":
            return Precision("fp16", "auto: train.amp_dtype float16 on CUDA")
        return Precision("bf16", "auto: CUDA device with bf16") if cuda_has_bf16() else \
            Precision("fp32", "auto: CUDA device without bf16")
    if device.type == "cpu" and cpu_has_native_bf16():
        return Precision("bf16", "auto: CPU with native bf16")
    return Precision("fp32", f"auto: {device.type} without native bf16")


_flush_depth = 0


@contextlib.contextmanager
def flush_denormal() -> Iterator[bool]:
    """Flush denormal floats to zero inside the block (``torch.set_flush_denormal``; back to
    torch's default, off, when the outermost such block ends). Yields whether this CPU supports it."""
    global _flush_depth
    supported = bool(torch.set_flush_denormal(True))
    _flush_depth += 1
    try:
        yield supported
    finally:
        _flush_depth -= 1
        if supported and _flush_depth == 0:
            torch.set_flush_denormal(False)


def use_channels_last(model: nn.Module) -> bool:
    """Put ``model`` in the channels-last memory layout when all its convolutions are 2-D (the
    image models; a Conv3d or Conv1d model keeps its layout), and convert its 4-D inputs on the way
    in (a forward pre-hook). Returns whether it did. A layout, not a dtype: every value is the
    same, and the checkpoints' tensors (which keep the layout) load into any model."""
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs or not all(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in convs):
        return False
    if any(p.dim() > 4 for p in model.parameters()):
        return False
    model.to(memory_format=torch.channels_last)

    def to_channels_last(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.dim() == 4
                     else a for a in args)

    model.register_forward_pre_hook(to_channels_last)
    return True
