"""A trained network ready to use: loaded from a run folder, a study trial or an export.

What ``nasseg predict``, ``evaluate`` and ``export`` take as ``RUN_OR_TRIAL``:

- a run folder written by ``nasseg train`` (``checkpoint.pt`` + ``config.json``), or its
  ``checkpoint.pt``;
- a study trial, ``studies/quickstart.yaml#12`` (also ``runs/quickstart#12`` or
  ``runs/quickstart/study.db#12``): the trial's best checkpoint, as the study records it
  (``user_attrs["checkpoint"]``) or in the study's ``trials/trial_0012/`` folder;
- an exported model (``nasseg export``): ``*.onnx`` (run with onnxruntime) or a TorchScript
  file; both carry the run's config inside (ONNX metadata ``nasseg``, TorchScript extra file
  ``nasseg.json``), so preprocessing is the same as in training.

Example:
    >>> net = load_network("runs/train/dsb")               # doctest: +SKIP
    >>> net.spatial_dims, net.num_classes, net.size          # doctest: +SKIP
    (2, 2, None)
    >>> logits = net(torch.zeros(2, 3, 96, 96))              # [2, 1, 96, 96]  # doctest: +SKIP
"""
from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from nasseg.arch.config import size_multiple
from nasseg.errors import ConfigError
from nasseg.arch import build_model, load_arch
from nasseg.search.study import load_study_config
from nasseg.store import feasible, locate, trial_record

META_KEY = "nasseg"
"""ONNX metadata key / TorchScript extra-file stem holding the run's config JSON."""


@dataclass
class Network:
    """A network and the training config that says how to feed it; its ``inference``
    section (:mod:`nasseg.train.contract`) holds everything prediction needs, so the
    training data is never read again.

    Attributes:
        forward: ``[B, C, *S]`` float32 tensor -> logits ``[B, K, *S]`` (K = 1: binary).
        meta: the run's config (``arch``, ``data``, ``train``, ``resolved``), as in its
            ``config.json``; ``trial`` (study, number) when loaded from a study.
        source: where it was loaded from (for messages and output provenance).
        kind: ``checkpoint``, ``onnx`` or ``torchscript``.
        module: the PyTorch module (checkpoints only).
    """

    forward: Callable[[Tensor], Tensor]
    meta: dict[str, Any]
    source: str
    kind: str
    module: nn.Module | None = field(default=None, repr=False)

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    @property
    def resolved(self) -> dict[str, Any]:
        return self.meta.get("resolved") or {}

    @property
    def contract(self) -> dict[str, Any]:
        """What the network needs to predict (:mod:`nasseg.train.contract`); ``{}`` for a
        network trained before nasseg stored it."""
        return self.meta.get("inference") or {}

    @property
    def class_names(self) -> list[str] | None:
        """Class names, background first, as training's data named them (``None``: not stored)."""
        names = self.contract.get("class_names")
        return list(names) if names else None

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """3D: the stored preprocessing plan (normalisation kinds, CT statistics, target spacing)."""
        return self.contract.get("preprocessing")

    @property
    def spatial_dims(self) -> int:
        return int(self.meta["arch"]["spatial_dims"])

    @property
    def in_channels(self) -> int:
        return int(self.resolved.get("in_channels") or self.meta["arch"]["in_channels"])

    @property
    def out_channels(self) -> int:
        return int(self.resolved.get("out_channels") or self.meta["arch"]["out_channels"])

    @property
    def num_classes(self) -> int:
        """Classes including background (2 = binary, one sigmoid output)."""
        return 2 if self.out_channels == 1 else self.out_channels

    @property
    def divisor(self) -> int:
        """Input sizes must be multiples of this (stored; else :func:`~nasseg.arch.config.size_multiple`)."""
        return int(self.contract.get("size_multiple") or size_multiple(len(self.meta["arch"]["stages"])))

    @property
    def size(self) -> tuple[int, ...] | None:
        """2D: the size images were resized to in training (``None`` = native size)."""
        s = (self.meta.get("data") or {}).get("size")
        if s is None or self.spatial_dims != 2:
            return None
        return (int(s), int(s)) if isinstance(s, int) else tuple(int(v) for v in s)

    @property
    def window(self) -> tuple[int, ...] | None:
        """3D: the sliding window training evaluated with (``None`` = whole cases)."""
        w = self.resolved.get("window_size")
        return tuple(int(v) for v in w) if w else None

    @property
    def overlap(self) -> float:
        return float((self.meta.get("train") or {}).get("sw_overlap", 0.5))

    @property
    def flip_axes(self) -> list[int]:
        """Spatial axes training flipped (the default test-time-augmentation axes)."""
        flip = ((self.meta.get("data") or {}).get("augment") or {}).get("flip", True)
        if flip is True:
            return list(range(self.spatial_dims))
        return [] if flip is False else [int(a) for a in flip]

    @property
    def name(self) -> str:
        trial = self.meta.get("trial")
        if trial:
            return f"{trial['study']}#{trial['number']}"
        return self.meta["arch"].get("name") or Path(self.source).stem

    @property
    def seed(self) -> int:
        return int((self.meta.get("train") or {}).get("seed", 0))


def load_network(target: str | Path, device: str | torch.device = "cpu") -> Network:
    """Load ``RUN_OR_TRIAL`` (see the module docstring).

    Raises:
        ConfigError: nothing loadable there (the message says what was looked for), or a
            study trial without a checkpoint (not trained, failed, or over budget).
    """
    text = str(target)
    if "#" in text:
        path, number = text.rsplit("#", 1)
        if not number.isdigit():
            raise ConfigError(f"{text}: expected STUDY#N with a trial number, e.g. studies/quickstart.yaml#3")
        ckpt, trial = trial_checkpoint(path, int(number))
        net = _from_checkpoint(ckpt, device)
        net.meta["trial"] = trial
        return net
    path = Path(text)
    if path.is_dir():
        if (path / "checkpoint.pt").is_file():
            return _from_checkpoint(path / "checkpoint.pt", device)
        if (path / "study.db").exists() or (path / "study.log").exists():
            raise ConfigError(f"{path}: a study folder; name one of its trials as {path}#N (see `nasseg pareto`)")
        if (path / "failed.json").is_file():
            reason = json.loads((path / "failed.json").read_text()).get("reason", "")
            raise ConfigError(f"{path}: this run failed ({reason}); it has no checkpoint")
        raise ConfigError(f"{path}: no checkpoint.pt here (a run folder of `nasseg train` holds one)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such run folder, study trial (STUDY#N) or exported model")
    if path.suffix == ".onnx" or _is_onnx(path):
        return _from_onnx(path)
    if _is_torchscript(path):
        return _from_torchscript(path, device)
    if path.suffix in (".yaml", ".yml"):
        raise ConfigError(f"{path}: a study YAML; name one of its trials as {path}#N (see `nasseg pareto`)")
    return _from_checkpoint(path, device)


def trial_checkpoint(study_ref: str, number: int) -> tuple[Path, dict[str, Any]]:
    """The checkpoint of trial ``number`` of a stored study, and ``{study, number}``.

    A trial that reused an identical architecture's result points at that trial's
    checkpoint. Raises ``ConfigError`` when the trial is unknown, failed, infeasible or
    has no checkpoint on disk.
    """
    study = locate(study_ref)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(f"{study_ref}: study '{study.study_name}' has no trial {number} "
                          f"(trials 0..{max(trials, default=-1)})")
    t = trials[number]
    rec = trial_record(t)
    if not feasible(t):
        why = rec.fail_reason or rec.constraint_violation or t.state.name.lower()
        raise ConfigError(f"{study_ref}#{number}: trial {number} has no usable trained network ({why})")
    source = trials.get(rec.reused_from, t)
    candidates = [Path(p) for p in (trial_record(source).checkpoint,) if p]
    run_root = _trial_root(study_ref, study)
    if run_root is not None:
        candidates.append(run_root / f"trial_{source.number:04d}" / "checkpoint.pt")
    for c in candidates:
        if c.is_file():
            return c, {"study": study.study_name, "number": number}
    raise ConfigError(f"{study_ref}#{number}: no checkpoint of trial {source.number} "
                      f"(looked for {', '.join(str(c) for c in candidates) or 'a recorded path'})")


def _trial_root(ref: str, study: Any) -> Path | None:
    path = Path(ref)
    if path.suffix in (".yaml", ".yml"):
        return load_study_config(path).out_dir() / "trials"
    if path.is_dir():
        return path / "trials"
    if path.is_file():
        return path.parent / "trials"
    return None


def _from_checkpoint(path: Path, device: str | torch.device) -> Network:
    try:
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):  # in "versions"
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling error means "not a checkpoint"
        raise ConfigError(f"{path}: not a nasseg checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or "model" not in payload or "arch" not in payload:
        raise ConfigError(f"{path}: not a nasseg checkpoint (expected the 'model' and 'arch' of `nasseg train`)")
    arch = {k: v for k, v in payload["arch"].items() if k != "arch_id"}
    if "module" in arch:
        raise ConfigError(f"{path}: trained from a Python module, not an architecture config; cannot rebuild it")
    model = build_model(load_arch(arch))
    model.load_state_dict(payload["model"])
    dev = torch.device(device)
    meta = {k: v for k, v in payload.items() if k != "model"}
    channels_last = bool((meta.get("train") or {}).get("channels_last", False))
    fmt = (torch.channels_last if arch["spatial_dims"] == 2 else torch.channels_last_3d) \
        if channels_last else torch.contiguous_format
    model = model.to(dev, memory_format=fmt).eval()

    @torch.no_grad()
    def forward(x: Tensor) -> Tensor:
        out = model(x.to(dev).contiguous(memory_format=fmt))
        return (out[0] if isinstance(out, (list, tuple)) else out).float()

    return Network(forward, meta, str(path), "checkpoint", model)


def _from_onnx(path: Path) -> Network:
    import onnx  # lazy: onnx is optional (extra "export")
    import onnxruntime as ort  # lazy: onnxruntime is optional (extra "export")

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if META_KEY not in props:
        raise ConfigError(f"{path}: an ONNX model without nasseg metadata; export it with `nasseg export`")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def forward(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy().astype(np.float32)})[0])

    return Network(forward, json.loads(props[META_KEY]), str(path), "onnx")


def _is_onnx(path: Path) -> bool:
    """An ONNX file whatever its name: a protobuf ``ModelProto`` begins with field 1
    (``ir_version``, a varint: byte 0x08); torch files are zip archives (``PK``) or pickles (0x80)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x08 and head[1] < 0x80


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n for n in z.namelist())


def _from_torchscript(path: Path, device: str | torch.device) -> Network:
    extra = {f"{META_KEY}.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    if not extra[f"{META_KEY}.json"]:
        raise ConfigError(f"{path}: a TorchScript model without nasseg metadata; export it with `nasseg export`")
    module.eval()
    dev = torch.device(device)

    @torch.no_grad()
    def forward(x: Tensor) -> Tensor:
        out = module(x.to(dev))
        return (out[0] if isinstance(out, (list, tuple)) else out).float()

    return Network(forward, json.loads(extra[f"{META_KEY}.json"]), str(path), "torchscript")
