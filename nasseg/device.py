"""The one place that turns a device name (``cpu``, ``cuda``, ``cuda:N``, ``auto``) into a
usable ``torch.device``, or refuses it with a line naming the option it came from.

Example:
    >>> resolve_device("cpu", "--device")
    device(type='cpu')
    >>> resolve_device("tpu", "train.device")
    Traceback (most recent call last):
    ...
    nasseg.errors.ConfigError: train.device: unknown device 'tpu' (cpu, cuda, cuda:N, auto)
"""
from __future__ import annotations

from typing import Any

from nasseg.errors import ConfigError


def resolve_device(name: str, option: str) -> Any:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda[:N]`` must exist here.

    Args:
        name: the device as the user wrote it.
        option: where it came from, for the message (``--device``, ``train.device``,
            ``study.yaml: device``).

    Raises:
        ConfigError: an unknown device, CUDA asked for on a machine without it, or a CUDA
            index this machine does not have.
    """
    import torch  # lazy: CLI startup (torch)

    text = str(name).strip()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{option}: unknown device '{name}' (cpu, cuda, cuda:N, auto)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option}: '{name}' asked for, but this machine has no CUDA device (use cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{option}: '{name}' asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def bf16_supported(device: Any) -> bool:
    """Whether the CUDA ``device`` itself (not the process's current device) has bf16."""
    import torch  # lazy: CLI startup (torch)

    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported()


def deterministic_run(device_type: str) -> bool:
    """Whether a run on ``device_type`` switches torch's deterministic algorithms on: on
    the CPU (they cost nothing there), not on CUDA (cuDNN's autotuner picks the fastest
    kernels, which may differ from run to run).

    Example:
        >>> deterministic_run("cpu"), deterministic_run("cuda")
        (True, False)
    """
    return device_type == "cpu"


def resolve_precision(device: Any, amp: str = "auto") -> str:
    """The one precision rule: ``fp32`` on the CPU or with ``amp: off``; on CUDA ``fp16``
    when asked for (or ``auto`` on a GPU without bf16), else ``bf16``. Training autocasts
    to it; the cost profile times at it.

    Example:
        >>> resolve_precision("cpu", "auto"), resolve_precision("cpu", "bf16")
        ('fp32', 'fp32')
    """
    import torch  # lazy: CLI startup (torch)

    dev = torch.device(device)
    if dev.type != "cuda" or amp == "off":
        return "fp32"
    if amp == "fp16" or (amp == "auto" and not bf16_supported(dev)):
        return "fp16"
    return "bf16"


def autocast_dtype(precision: str) -> Any:
    """The autocast dtype of a resolved precision (``None`` for ``fp32``: no autocast).

    Example:
        >>> autocast_dtype("bf16"), autocast_dtype("fp32")
        (torch.bfloat16, None)
    """
    import torch  # lazy: CLI startup (torch)

    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"precision must be one of {', '.join(dtypes)}, got {precision!r}")
    return dtypes[precision]
