"""``nasseg export --format onnx|torchscript``: a trained network as one deployable file,
checked against PyTorch.

The run's config (architecture, data, training, resolved sizes) travels inside the file
(ONNX metadata ``nasseg``; TorchScript extra file ``nasseg.json``), so ``nasseg predict``
and ``nasseg evaluate`` take the exported file and preprocess as training did.

ONNX uses torch's ``torch.export``-based exporter (the default since torch 2.9; it
needs ``onnxscript``). The spatial size (and batch) are exported dynamic with
``Dim.AUTO``; whether the network really allows other sizes is then *checked*: the
exported file is run on a second seeded input of another size (each axis one
``divisor`` larger, batch 2). If that fails, the network is re-exported for the example
size only and the result says ``dynamic: False`` and why.

Parity: on a seeded ``randn`` input, the exported model's output is compared with the
PyTorch module's; the largest absolute difference is reported and must be under ``atol``.

Example:
    >>> res = export_network(load_network("runs/train/dsb"), "onnx", "dsb.onnx")   # doctest: +SKIP
    >>> res.max_abs_diff < 1e-4, res.dynamic                                       # doctest: +SKIP
    (True, True)
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from nasseg.errors import ConfigError, NassegError
from nasseg.infer.network import META_KEY, Network, load_network
from nasseg.outputs import check_file

FORMATS = ("onnx", "torchscript")


class ExportError(NassegError):
    """The exported model does not reproduce PyTorch's output (or could not be written)."""


@dataclass
class ExportResult:
    """What was exported and how closely it matches PyTorch.

    Attributes:
        path: the written file.
        format: ``onnx`` or ``torchscript``.
        shapes: the input shapes the parity check ran on.
        max_abs_diff: the largest ``|exported - pytorch|`` over those inputs.
        dynamic: True when the file accepts other spatial sizes (checked, not assumed).
        note: why it is not dynamic, if it is not.
        seconds: export and check time.
    """

    path: Path
    format: str
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    max_abs_diff: float = float("nan")
    dynamic: bool = False
    note: str = ""
    seconds: float = 0.0


def example_shape(net: Network, size: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """``[1, C, *S]``: ``size``, else the training size (2D) or window (3D), else 64 (rounded up
    to the divisor)."""
    native = -(-64 // net.divisor) * net.divisor  # native-size 2D training: a typical size
    spatial = size or net.size or net.window or (native,) * net.spatial_dims
    if len(spatial) == 1:
        spatial = spatial * net.spatial_dims
    if len(spatial) != net.spatial_dims or any(s % net.divisor or s <= 0 for s in spatial):
        raise ConfigError(f"size {tuple(spatial)}: needs {net.spatial_dims} axes, each a positive multiple of "
                          f"{net.divisor}")
    return (1, net.in_channels, *spatial)


def export_network(net: Network, fmt: str, out: str | Path, *, size: tuple[int, ...] | None = None,
                   atol: float = 1e-4, seed: int = 0, overwrite: bool = False) -> ExportResult:
    """Export ``net`` (loaded from a checkpoint) and check it against PyTorch.

    Args:
        net: a network with its PyTorch module (a run folder or study trial).
        fmt: ``onnx`` or ``torchscript``.
        out: the file to write.
        size: example spatial size (default: see :func:`example_shape`).
        atol: largest accepted absolute difference.
        seed: seed of the parity inputs.
        overwrite: replace an existing ``out`` (never the network's own file).

    Raises:
        ConfigError: unknown format, ``net`` has no PyTorch module (already exported), or
            ``out`` is a folder, the network's own file, or exists (without ``overwrite``).
        ExportError: the exported output differs from PyTorch's by more than ``atol``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format '{fmt}' ({', '.join(FORMATS)})")
    if net.module is None:
        raise ConfigError(f"{net.source}: already an exported {net.kind} model; export from its run folder or trial")
    t0 = time.perf_counter()
    out = check_file(out, "-o", inputs=[Path(net.source)], overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = _MainOutput(net.module.to("cpu", memory_format=torch.contiguous_format)).eval()
    shape = example_shape(net, size)
    second = (2, shape[1], *[s + net.divisor for s in shape[2:]])
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(shape, generator=gen), torch.randn(second, generator=gen)]
    meta = json.dumps(net.meta)
    write = _write_onnx if fmt == "onnx" else _write_torchscript
    res = ExportResult(out, fmt)
    try:
        write(module, inputs[0], out, meta, dynamic=True)
        res.max_abs_diff = _max_diff(module, out, inputs)
        res.shapes, res.dynamic = [tuple(x.shape) for x in inputs], True
    except Exception as err:  # noqa: BLE001 - any failure at the second size means "not dynamic"
        res.note = f"fixed size {tuple(shape[2:])}: at {tuple(second[2:])} it failed ({type(err).__name__}: " \
                   f"{str(err).splitlines()[0][:160] if str(err) else ''})"
        write(module, inputs[0], out, meta, dynamic=False)
        res.max_abs_diff = _max_diff(module, out, inputs[:1])
        res.shapes = [tuple(inputs[0].shape)]
    res.seconds = time.perf_counter() - t0
    if not res.max_abs_diff <= atol:
        raise ExportError(f"{out}: {fmt} output differs from PyTorch by {res.max_abs_diff:.3g} "
                          f"(more than {atol:g}) on a seeded input of shape {res.shapes[-1]}")
    return res


def _reference(module: torch.nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        y = module(x)
    return (y[0] if isinstance(y, (list, tuple)) else y).float()


def _max_diff(module: torch.nn.Module, path: Path, inputs: list[Tensor]) -> float:
    exported = load_network(path)
    diffs = []
    for x in inputs:
        y = exported(x)
        ref = _reference(module, x)
        if tuple(y.shape) != tuple(ref.shape):
            raise ExportError(f"{path}: output shape {tuple(y.shape)} differs from PyTorch's {tuple(ref.shape)}")
        diffs.append(float((y.float() - ref).abs().max()))
    return max(diffs)


def _write_onnx(module: torch.nn.Module, x: Tensor, out: Path, meta: str, dynamic: bool) -> None:
    import onnx  # lazy: onnx is optional (extra "export")

    dims = None
    if dynamic:
        auto = torch.export.Dim.AUTO
        dims = ({axis: auto for axis in range(x.ndim) if axis != 1},)
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notices
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(out), input_names=["image"], output_names=["logits"],
                          dynamic_shapes=dims, dynamo=True, verbose=False, optimize=True)
    quiet.setLevel(level)
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, meta
    onnx.save(model, str(out))
    _drop_external_data(out)


def _drop_external_data(out: Path) -> None:
    """The exporter may leave ``<file>.data`` for large weights; re-save them inline."""
    data = out.with_name(out.name + ".data")
    if data.exists():
        import onnx  # lazy: onnx is optional (extra "export")

        onnx.save(onnx.load(str(out)), str(out), save_as_external_data=False)
        data.unlink()


def _write_torchscript(module: torch.nn.Module, x: Tensor, out: Path, meta: str, dynamic: bool) -> None:
    del dynamic  # a trace records shapes symbolically where the code reads them from tensors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_MainOutput(module), x, check_trace=False)
        torch.jit.save(traced, str(out), _extra_files={f"{META_KEY}.json": meta})


class _MainOutput(torch.nn.Module):
    """The full-resolution output only (deep-supervision heads are training aids)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        y = self.module(x)
        return y[0] if isinstance(y, (list, tuple)) else y
