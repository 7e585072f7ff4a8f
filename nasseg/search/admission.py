"""Several trials per device, admitted by their estimated training memory.

A typical 2D trial of the lightweight space uses a few percent of a large GPU, so a
study may run ``trials_per_device`` trials on each device at once (``--trials-per-gpu``).
Before a trial trains, its worker asks :class:`Admission` for room on its device:

- at most ``slots`` trials run on a device at once;
- their estimated memory (:func:`trial_memory_mb`, the cost package's estimate from
  shapes, known before training) sums to at most the device's budget (``capacity_mb``); a trial
  larger than the whole budget is admitted only onto an empty device;
- a trial marked *alone* (the retry of a trial that ran out of memory next to others,
  see :func:`requeue_alone`) waits until the device is empty and keeps it to itself;
  while it waits, no other trial is admitted there, so it cannot starve.

The ledger is a JSON file guarded by an exclusive ``fcntl`` lock, shared by the worker
processes of one machine: ``{device: [{host, pid, start, trial, mb, alone, waiting}]}``.
Entries of processes that no longer run are dropped at every read, so a killed worker
frees its room.

Example:
    >>> adm = Admission(Path("/tmp/demo/.admission.json"), capacity_mb=1000, slots=4)
    >>> with adm.admitted("cuda:0", trial=3, need_mb=250):
    ...     adm.usage("cuda:0")
    (1, 250.0)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nasseg.arch import ArchConfig
from nasseg.cost import estimate_train_memory_mb
from nasseg.data import load_dataset
from nasseg.errors import is_out_of_memory
from nasseg.store.storage import alive, identity
from nasseg.train.engine import train
from nasseg.train.resolved import ResolvedRun, resolve_run

CAPACITY_FRACTION = 0.9
"""Share of a CUDA device's total memory that admitted trials may plan to use."""
CUDA_OVERHEAD_MB = 600.0
"""Per-trial memory outside the allocator's tensors (CUDA context, cuDNN workspaces)."""


@dataclass(frozen=True)
class Ticket:
    """One admitted trial on one device."""

    device: str
    trial: int
    mb: float
    alone: bool


class Admission:
    """The memory- and slot-aware admission controller (see the module docstring).

    Args:
        ledger: the shared JSON file (created if missing).
        capacity_mb: memory budget per device in MB; ``None`` = no memory limit (slots
            only), or a mapping ``{device: MB}``.
        slots: most trials on one device at once.
        poll_s: seconds between retries while waiting for room.
    """

    def __init__(self, ledger: Path, capacity_mb: float | dict[str, float] | None, slots: int,
                 poll_s: float = 0.2) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.ledger, self.capacity, self.slots, self.poll_s = Path(ledger), capacity_mb, slots, poll_s
        self.ledger.parent.mkdir(parents=True, exist_ok=True)

    def capacity_of(self, device: str) -> float:
        cap = self.capacity.get(device) if isinstance(self.capacity, dict) else self.capacity
        return math.inf if cap is None else float(cap)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, list[dict[str, Any]]]]:
        with open(self.ledger.with_name(self.ledger.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    state = json.loads(self.ledger.read_text() or "{}")
                except (FileNotFoundError, json.JSONDecodeError):
                    state = {}
                state = {d: [e for e in entries if alive(e) is not False] for d, entries in state.items()}
                yield state
                tmp = self.ledger.with_name(self.ledger.name + ".tmp")
                tmp.write_text(json.dumps(state))
                tmp.replace(self.ledger)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _fits(self, entries: list[dict[str, Any]], me: dict[str, Any], device: str) -> bool:
        others = [e for e in entries if e is not me and not e.get("waiting")]
        if me["alone"]:
            return not others
        if any(e.get("alone") for e in entries if e is not me):
            return False  # a trial that must run alone holds or awaits the device
        if not others:
            return True
        used = sum(e["mb"] for e in others)
        return len(others) < self.slots and used + me["mb"] <= self.capacity_of(device)

    def try_acquire(self, device: str, trial: int, need_mb: float, alone: bool = False) -> Ticket | None:
        """Admit now if there is room (registering an *alone* request as waiting if not)."""
        me_id = {**identity(), "trial": trial}
        with self._locked() as state:
            entries = state.setdefault(device, [])
            me = next((e for e in entries if _same(e, me_id)), None)
            if me is None:
                me = {**me_id, "mb": float(need_mb), "alone": bool(alone), "waiting": True}
                entries.append(me)
            if self._fits(entries, me, device):
                me["waiting"] = False
                return Ticket(device, trial, float(need_mb), bool(alone))
            if not alone:
                entries.remove(me)
            return None

    def acquire(self, device: str, trial: int, need_mb: float, alone: bool = False,
                timeout_s: float | None = None) -> Ticket:
        """Wait until the trial is admitted onto ``device``; returns its ticket.

        Raises:
            TimeoutError: no room within ``timeout_s`` seconds.
        """
        t0 = time.monotonic()
        while True:
            ticket = self.try_acquire(device, trial, need_mb, alone)
            if ticket is not None:
                return ticket
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                self.release(Ticket(device, trial, need_mb, alone))
                raise TimeoutError(f"no room on {device} for trial {trial} ({need_mb:.0f} MB) "
                                   f"within {timeout_s:.0f} s")
            time.sleep(self.poll_s)

    def release(self, ticket: Ticket) -> None:
        """Free the ticket's room (a no-op if it is gone)."""
        me_id = {**identity(), "trial": ticket.trial}
        with self._locked() as state:
            state[ticket.device] = [e for e in state.get(ticket.device, []) if not _same(e, me_id)]

    @contextlib.contextmanager
    def admitted(self, device: str, trial: int, need_mb: float, alone: bool = False) -> Iterator[Ticket]:
        """``acquire`` ... ``release`` around a block."""
        ticket = self.acquire(device, trial, need_mb, alone)
        try:
            yield ticket
        finally:
            self.release(ticket)

    def usage(self, device: str) -> tuple[int, float]:
        """``(trials admitted, MB planned)`` on ``device`` now."""
        with self._locked() as state:
            running = [e for e in state.get(device, []) if not e.get("waiting")]
        return len(running), float(sum(e["mb"] for e in running))


def _same(entry: dict[str, Any], me: dict[str, Any]) -> bool:
    return all(entry.get(k) == me[k] for k in ("host", "pid", "start", "trial"))


def device_capacity_mb(device: str, simulated_mb: float | None = None) -> float | None:
    """The memory budget of ``device`` in MB: ``simulated_mb`` if given, else 90% of a
    CUDA device's total memory, else ``None`` (the CPU: slots only)."""
    if simulated_mb is not None:
        return float(simulated_mb)
    if device.startswith("cuda"):
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return CAPACITY_FRACTION * total / 2**20
    return None


# -- wiring into a study's workers ------------------------------------------------------------
_CURRENT: Ticket | None = None


def current_ticket() -> Ticket | None:
    """The ticket of the trial this process is training now (``None`` outside one)."""
    return _CURRENT


def study_admission(cfg: Any, output_dir: Path) -> Admission | None:
    """The admission controller of a study's local workers, or ``None`` when every device
    runs one trial at a time and no device memory is simulated.

    ``cfg`` is the :class:`~nasseg.search.study.StudyConfig` (``trials_per_device``,
    ``device_memory_mb``, ``devices``); the ledger lives in ``output_dir``.
    """
    if cfg.trials_per_device <= 1 and cfg.device_memory_mb is None:
        return None
    caps = {d: device_capacity_mb(d, cfg.device_memory_mb) for d in cfg.devices}
    return Admission(Path(output_dir) / ".admission.json",
                     {d: c for d, c in caps.items() if c is not None}, cfg.trials_per_device)


def admitted_trainer(base: Any, adm: Admission, setup: Any, device: str, trial: int, alone: bool,
                     key: str | None = None) -> Any:
    """Wrap a trainer (``None``: :func:`nasseg.train.train`) so it trains only once
    :class:`Admission` gives it room on ``device`` (``key``: the device's name in the
    ledger, when it differs from ``device``).

    The trial's run is resolved first (:func:`nasseg.train.resolved.resolve_run`: the
    planned batch and patch, the precision training will use), its need is
    :func:`trial_memory_mb` of that run, and the trainer is given the same resolved run
    (``resolved=``), so what was admitted is what trains.
    """
    if base is None:
        base = train

    def run(arch: Any, data: Any, cfg: Any, **kw: Any) -> Any:
        global _CURRENT
        resolved = trial_run(arch, data, cfg, device)
        need = trial_memory_mb(arch, resolved)
        with adm.admitted(key or device, trial, need, alone) as ticket:
            _CURRENT = ticket
            try:
                return base(arch, data, cfg, resolved=resolved, **kw)
            finally:
                _CURRENT = None
    return run


def trial_run(arch: Any, data: Any, cfg: Any, device: str) -> ResolvedRun:
    """The trial's resolved run on ``device`` (the dataset is loaded from its cache; the
    network's channels set from the data, as training sets them)."""
    ds = load_dataset(data)
    if isinstance(arch, ArchConfig):
        arch = arch.model_copy(update={"in_channels": ds.in_channels, "out_channels": ds.out_channels})
    return resolve_run(arch, ds, data, cfg, device=device)


def trial_memory_mb(arch: Any, run: ResolvedRun) -> float:
    """The memory a trial plans for: the cost package's training-step estimate at the
    resolved run's batch, input shape and precision, plus the CUDA overhead on a GPU.

    Example:
        >>> run = trial_run(load_arch("cmunext_s"), resolve_data("synthetic"), TrainConfig(), "cpu")  # doctest: +SKIP
        >>> trial_memory_mb(load_arch("cmunext_s"), run)  # doctest: +SKIP
    """
    if isinstance(arch, ArchConfig):
        arch = arch.model_copy(update={"in_channels": run.input_shape[0]})
    mb = estimate_train_memory_mb(arch, run.batch_shape(), dtype=run.amp_dtype or torch.float32)
    return mb + (CUDA_OVERHEAD_MB if run.device.startswith("cuda") else 0.0)


def needs_alone_retry(outcome: Any, alone: bool) -> bool:
    """A trial that failed out of memory beside other trials is retried alone (once); its
    stored reason is read by :func:`nasseg.errors.is_out_of_memory`, the one check."""
    return outcome.state == "fail" and not alone and is_out_of_memory(outcome.reason)

