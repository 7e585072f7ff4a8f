"""Params, MACs, FLOPs and feature-map sizes counted on the meta device.

The network is built on ``torch.device("meta")`` and run once on a meta tensor:
every op computes only its output shape, so no memory is allocated and no kernel
runs (GLIMS at 128^3 counts in well under a second). Two counts come out of that
one pass, each following a reference counter's convention to the unit:

- ``macs``: ptflops 0.7.5, ``pytorch`` backend (what the CMUNeXt paper calls
  "GFLOPs"). Module rules by exact type (a conv with its bias, a norm 1x or 2x
  its input, activations and upsampling 1x their output, pools 1x their input,
  linear layers with their bias) plus ptflops' functional rules (``F.relu``,
  ``F.gelu``, ``F.softmax``, ``F.interpolate``, pools, ``torch.matmul``,
  ``torch.add``/``torch.mul`` called as functions). ``a @ b`` and ``a + b`` are
  not counted, as in ptflops (so the attention products of the Swin layers, written
  ``q @ k`` as in GLIMS' code, are not either); blocks must not call the methods
  ``x.add(y)``, ``x.matmul(y)``, which ptflops counts but a torch function mode
  cannot tell from the operators. A module whose forward calls one of those
  functions is counted twice, as ptflops does.
- ``flops``: fvcore 0.1.5 (one fused multiply-add = one flop): convolutions and
  matrix products without their bias (:func:`torch.utils.flop_counter.conv_flop_count`
  halved), norms 4-5x their input (batch norm in eval 1-2x), bilinear 2D
  upsampling 4x and nearest 1x its output, 2D adaptive average pooling 1x its
  input; everything else (3D upsampling and pooling included) is free, as in fvcore.

Both are checked against ptflops and fvcore themselves on every preset and every
registered block and skip (``tests/test_cost_meta.py``). The ops the references
count by rules not followed here (einsum, ``nn.MultiheadAttention``, RNNs) raise
instead of counting wrong.

``activations`` is the number of elements in the outputs of every leaf module
(kept for the backward pass): the feature-map sizes that nnU-Net's
``compute_conv_feature_map_size`` adds up, here read from the shapes the meta
pass produces instead of written per block.

Example:
    >>> c = count(build_model(load_arch("cmunext")).to("meta"), (1, 3, 256, 256))
    >>> c.params, c.macs, c.flops
    (3149185, 7409033216, 7316512768)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import conv_flop_count

RULES_VERSION = "meta-1"
"""Bumped whenever a rule changes (part of the cost cache key)."""


@dataclass(frozen=True)
class Counts:
    """What one meta pass at batch 1 counts; :meth:`scaled` gives another batch size."""

    params: int
    macs: int
    flops: int
    activations: int

    def scaled(self, batch: int) -> Counts:
        return Counts(self.params, self.macs * batch, self.flops * batch, self.activations * batch)


def _prod(shape) -> int:
    return math.prod(int(n) for n in shape)


def _broadcast(*shapes) -> tuple[int, ...]:
    """NumPy broadcasting of shapes (``torch.broadcast_shapes`` would import sympy: seconds)."""
    out: list[int] = []
    for dims in itertools.zip_longest(*[tuple(reversed(s)) for s in shapes], fillvalue=1):
        sizes = {int(n) for n in dims} - {1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(reversed(out))


# ---- ptflops' module rules (exact types, as ptflops' MODULES_MAPPING) -----------------------

def _conv_macs(m, inp, out, transposed=False) -> int:
    x = inp[0]
    spatial = x.shape[2:] if transposed else out.shape[2:]
    per_position = _prod(m.kernel_size) * m.in_channels * (m.out_channels // m.groups)
    bias = _prod(out.shape) if m.bias is not None else 0
    return per_position * x.shape[0] * _prod(spatial) + bias


def _norm_macs(m, inp, out) -> int:
    return _prod(inp[0].shape) * (2 if getattr(m, "affine", False) else 1)


def _linear_macs(m, inp, out) -> int:
    x = inp[0]
    return (x.shape[-1] * out.shape[-1] + (out.shape[-1] if m.bias is not None else 0)) * _prod(x.shape[:-1])


def _unsupported(m, inp, out) -> int:
    raise NotImplementedError(f"no meta counting rule for {type(m).__name__}")


_MODULE_MACS = {
    **{c: _conv_macs for c in (nn.Conv1d, nn.Conv2d, nn.Conv3d)},
    **{c: partial(_conv_macs, transposed=True)
       for c in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)},
    **{c: (lambda m, i, o: _prod(o.shape))
       for c in (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.Upsample)},
    **{c: (lambda m, i, o: _prod(i[0].shape))
       for c in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)},
    **{c: _norm_macs for c in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d,
                               nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)},
    nn.Linear: _linear_macs,
    **{c: _unsupported for c in (nn.MultiheadAttention, nn.RNN, nn.GRU, nn.LSTM)},
}


# ---- ptflops' functional rules (the functions its pytorch backend patches) ------------------

def _numel_first(out, x, *args, **kwargs) -> int:
    return _prod(x.shape)


def _interp_macs(out, x, size=None, scale_factor=None, *args, **kwargs) -> int:
    if size is not None:
        sizes = size if isinstance(size, (tuple, list)) else [size] * (x.dim() - 2)
        return _prod(sizes) * _prod(x.shape[:2])
    if isinstance(scale_factor, (tuple, list)) and len(scale_factor) == x.dim() - 2:
        return int(_prod(x.shape) * _prod(scale_factor))
    return int(_prod(x.shape) * scale_factor ** (x.dim() - 2))


def _matmul_macs(out, a, b, *args, **kwargs) -> int:
    return _prod(a.shape) * b.shape[-1]


def _addmm_macs(out, bias, a, b, *args, beta=1, **kwargs) -> int:
    return _prod(a.shape) * b.shape[-1] + (_prod(bias.shape) if beta != 0 else 0)


def _elementwise_macs(out, a, b, *args, **kwargs) -> int:
    if not torch.is_tensor(a):
        return _prod(b.shape) if torch.is_tensor(b) else 1
    if not torch.is_tensor(b):
        return _prod(a.shape)
    return _prod(_broadcast(a.shape, b.shape))


def _ptflops_functions() -> dict:
    rules = {f: _numel_first for f in (
        F.relu, F.prelu, F.elu, F.relu6, F.gelu, F.silu, F.softmax,
        F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.max_pool1d, F.max_pool2d, F.max_pool3d,
        F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
        F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)}
    rules |= {F.interpolate: _interp_macs, F.upsample: _interp_macs}
    # Only the torch.* functions: a torch function mode sees ``a + b`` and ``a.add(b)`` as the
    # same ``Tensor.add``, and ptflops counts the method but not the operator. nasseg's blocks use
    # operators, so both agree; the reference tests fail if a block calls ``x.add(y)``.
    rules |= {f: _matmul_macs for f in (torch.matmul, torch.mm, torch.bmm)}
    rules |= {f: _addmm_macs for f in (torch.addmm, torch.baddbmm)}
    rules |= {f: _elementwise_macs for f in (torch.mul, torch.add)}
    return rules


# ---- fvcore's rules (its default jit handles, by the torch function that emits the op) ------

def _conv_flops(out, x, w, *args, transposed=False, **kwargs) -> int:
    return conv_flop_count(list(x.shape), list(w.shape), list(out.shape), transposed=transposed) // 2


def _linear_flops(out, x, w, *args, **kwargs) -> int:
    return _prod(x.shape) * w.shape[0]


def _rmatmul_flops(out, b, a, *args, **kwargs) -> int:
    return _prod(a.shape) * b.shape[-1]


def _bmm_flops(out, a, b, *args, **kwargs) -> int:
    return _prod(a.shape) * b.shape[-1]


def _addmm_flops(out, bias, a, b, *args, **kwargs) -> int:
    return a.shape[0] * a.shape[1] * b.shape[1]


def _arg(args, kwargs, index: int, name: str):
    return args[index] if len(args) > index else kwargs.get(name)


def _batch_norm_flops(out, x, *args, **kwargs) -> int:
    affine = _arg(args, kwargs, 2, "weight") is not None
    if _arg(args, kwargs, 4, "training"):
        return _prod(x.shape) * (5 if affine else 4)
    return _prod(x.shape) * (2 if affine else 1)


def _norm_flops(weight_index: int, out, x, *args, **kwargs) -> int:
    """``weight_index``: the weight's position among the arguments after the input."""
    return _prod(x.shape) * (5 if _arg(args, kwargs, weight_index, "weight") is not None else 4)


def _interp_flops(out, x, *args, mode="nearest", **kwargs) -> int:
    mode = args[2] if len(args) > 2 else mode
    if x.dim() != 4 or mode not in ("nearest", "bilinear"):
        return 0  # fvcore has no handle for 1D/3D or other modes
    return _prod(out.shape) * (4 if mode == "bilinear" else 1)


def _einsum(*args, **kwargs) -> int:
    raise NotImplementedError("no meta counting rule for einsum (fvcore counts it by its path)")


def _fvcore_functions() -> dict:
    rules = {f: _conv_flops for f in (F.conv1d, F.conv2d, F.conv3d)}
    rules |= {f: partial(_conv_flops, transposed=True)
              for f in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)}
    rules |= {F.linear: _linear_flops, torch.Tensor.__rmatmul__: _rmatmul_flops,
              torch.bmm: _bmm_flops, torch.Tensor.bmm: _bmm_flops,
              torch.addmm: _addmm_flops, torch.Tensor.addmm: _addmm_flops,
              torch.einsum: _einsum,
              F.batch_norm: _batch_norm_flops, F.instance_norm: partial(_norm_flops, 2),
              F.group_norm: partial(_norm_flops, 1), F.layer_norm: partial(_norm_flops, 1),
              F.interpolate: _interp_flops,
              F.adaptive_avg_pool2d: _numel_first}
    rules |= {f: _matmul_macs for f in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
                                        torch.mm, torch.Tensor.mm)}
    return rules


def _tuple(v, d: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * d


def _conv_shape(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str):
        return None  # 'same'/'valid': let the meta kernel decide
    d = x.dim() - 2
    k, s, p, dl = w.shape[2:], _tuple(stride, d), _tuple(padding, d), _tuple(dilation, d)
    return (x.shape[0], w.shape[0],
            *[(n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, dl)])


def _conv_t_shape(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    d = x.dim() - 2
    k, s, p = w.shape[2:], _tuple(stride, d), _tuple(padding, d)
    op, dl = _tuple(output_padding, d), _tuple(dilation, d)
    return (x.shape[0], w.shape[1] * groups,
            *[(n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
              for n, ki, si, pi, oi, di in zip(x.shape[2:], k, s, p, op, dl)])


def _broadcast_shape(a, b, *args, **kwargs):
    return _broadcast(*[t.shape for t in (a, b) if torch.is_tensor(t)])


def _cat_shape(tensors, dim=0):
    first = tensors[0].shape
    dim = dim % len(first)
    return (*first[:dim], sum(t.shape[dim] for t in tensors), *first[dim + 1:])


def _pool_shape(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *args, **kwargs):
    d = x.dim() - 2
    k = _tuple(kernel_size, d)
    s = _tuple(stride if stride not in (None, []) else kernel_size, d)
    p, dl = _tuple(padding, d), _tuple(dilation, d)
    if ceil_mode:
        return None
    return (*x.shape[:2], *[(n + 2 * pi - di * (ki - 1) - 1) // si + 1
                            for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, dl)])


def _avg_pool_shape(x, kernel_size, stride=None, padding=0, ceil_mode=False, *args, **kwargs):
    return _pool_shape(x, kernel_size, stride, padding, 1, ceil_mode)


def _adaptive_shape(x, output_size, *args, **kwargs):
    return (*x.shape[:2], *_tuple(output_size, x.dim() - 2))


def _interp_shape(x, size=None, scale_factor=None, *args, **kwargs):
    d = x.dim() - 2
    if size is not None:
        return (*x.shape[:2], *_tuple(size, d))
    return (*x.shape[:2], *[int(n * f) for n, f in zip(x.shape[2:], _tuple(scale_factor, d))])


def _linear_shape(x, w, *args, **kwargs):
    return (*x.shape[:-1], w.shape[0])


def _matmul_shape(a, b, *args, **kwargs):
    if a.dim() < 2 or b.dim() < 2:
        return None
    return (*_broadcast(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])


def _pad_shape(x, pad, mode="constant", value=None):
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
    return tuple(shape)


def _reduce_shape(x, dim=None, keepdim=False, *args, **kwargs):
    dims = range(x.dim()) if dim is None or dim == () else _tuple(dim, 1)
    dims = {d % x.dim() for d in dims}
    return tuple(1 if i in dims else n for i, n in enumerate(x.shape) if keepdim or i not in dims)


def _getitem_shape(x, index):
    """``table[index]`` with one integer index tensor (a gather of rows); otherwise run it."""
    if torch.is_tensor(index) and not index.dtype.is_floating_point and index.dtype != torch.bool:
        return (*index.shape, *x.shape[1:])
    return None


def _shape_rules() -> dict:
    """Output shapes of the common ops, so that their (Python) meta kernels need not run."""
    same = {f: (lambda x, *a, **k: x.shape) for f in (
        F.batch_norm, F.instance_norm, F.group_norm, F.layer_norm, F.relu, F.gelu, F.prelu, F.silu,
        F.leaky_relu, F.elu, F.relu6, F.softmax, F.dropout, torch.sigmoid, torch.softmax,
        torch.Tensor.sigmoid, torch.Tensor.softmax, torch.roll, torch.Tensor.roll)}
    same |= {f: _reduce_shape for f in (torch.mean, torch.Tensor.mean, torch.amax, torch.Tensor.amax)}
    return same | {
        **{f: _conv_shape for f in (F.conv1d, F.conv2d, F.conv3d)},
        **{f: _conv_t_shape for f in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)},
        **{f: _broadcast_shape for f in (torch.add, torch.Tensor.add, torch.mul, torch.Tensor.mul,
                                         torch.sub, torch.Tensor.sub)},
        torch.cat: _cat_shape, F.linear: _linear_shape, F.interpolate: _interp_shape, F.pad: _pad_shape,
        torch.Tensor.__getitem__: _getitem_shape,
        torch.matmul: _matmul_shape, torch.Tensor.matmul: _matmul_shape,
        **{f: _pool_shape for f in (F.max_pool1d, F.max_pool2d, F.max_pool3d)},
        **{f: _avg_pool_shape for f in (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)},
        **{f: _adaptive_shape for f in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
                                        F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)},
    }


class _FunctionCounter(TorchFunctionMode):
    """Counts torch-function calls (the handler runs with the mode off: nested calls unseen).

    On the meta device, the common ops are not run at all: their output is an empty
    meta tensor of the shape a rule computes (their meta kernels are Python, most of
    the pass's time, and the first one imports torch._dynamo). ``shortcuts=False``
    runs every op's meta kernel instead (the tests check both give the same counts).
    """

    def __init__(self, shortcuts: bool = True) -> None:
        super().__init__()
        self.macs = self.flops = 0
        self._macs_rules, self._flops_rules = _ptflops_functions(), _fvcore_functions()
        self._shapes = _shape_rules() if shortcuts else {}
        self._binary = {torch.add, torch.mul, torch.sub, torch.Tensor.add, torch.Tensor.mul, torch.Tensor.sub,
                        torch.matmul, torch.Tensor.matmul}

    def _run(self, func, args, kwargs):
        rule = self._shapes.get(func)
        first = args[0] if args else None
        if isinstance(first, (list, tuple)) and first:
            first = first[0]
        if rule is None or not torch.is_tensor(first) or first.device.type != "meta" \
                or kwargs.get("return_indices") or "out" in kwargs:
            return func(*args, **kwargs)
        shape = rule(*args, **kwargs)
        if shape is None:
            return func(*args, **kwargs)
        if kwargs.get("inplace"):
            return first
        binary = len(args) > 1 and func in self._binary
        dtype = torch.result_type(args[0], args[1]) if binary else first.dtype
        return torch.empty(shape, dtype=dtype, device="meta")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self._run(func, args, kwargs)
        rule = self._macs_rules.get(func)
        if rule is not None:
            self.macs += int(rule(out, *args, **kwargs))
        rule = self._flops_rules.get(func)
        if rule is not None:
            self.flops += int(rule(out, *args, **kwargs))
        return out


def count(model: nn.Module, input_shape: tuple[int, ...], *, shortcuts: bool = True) -> Counts:
    """Count ``model`` (preferably on the meta device) at ``(1, C, *S)``; scale for batch B.

    The model is put in eval mode (as ptflops and fvcore do); the input is made on
    the model's device, so a meta model allocates nothing. ``shortcuts=False`` runs
    every op's meta kernel instead of the shape rules (same counts, slower).
    """
    shape = (1, *input_shape[1:])
    device = next(model.parameters()).device
    model.eval()
    macs = activations = 0

    def hook(module, inputs, output):
        nonlocal macs, activations
        rule = _MODULE_MACS.get(type(module))
        if rule is not None:
            macs += int(rule(module, inputs, output))
        if not next(module.children(), None):
            for t in output if isinstance(output, (list, tuple)) else (output,):
                if isinstance(t, torch.Tensor):
                    activations += t.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    counter = _FunctionCounter(shortcuts)
    try:
        with torch.no_grad(), counter:
            model(torch.empty(shape, device=device))
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Counts(params, macs + counter.macs, counter.flops, activations).scaled(input_shape[0])
