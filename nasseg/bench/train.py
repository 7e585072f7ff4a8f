"""``nasseg bench train``: nasseg's training loop against a minimal plain PyTorch loop.

Both loops train the same network (same config, same initial weights) on the same
decoded, normalised training cases with the same batch size, optimiser and loss
(BCE + Dice / CE + Dice), in one process, alternating epoch by epoch (nasseg epoch,
then a plain epoch from nasseg's per-epoch callback, ...) so that load from other
processes hits both alike. Throughput is training images per second over the epochs
after the first (warm-up); validation is not timed. The headline is the median of the
per-repeat ratios (nasseg / plain within one repeat, where both loops saw the same
load), with their range.

What the plain loop is, honestly: a *strong* hand-written baseline, stronger than the
CMUNeXt authors' own loop. It trains on the preloaded, decoded tensors (a
``TensorDataset`` and a shuffling ``DataLoader``: no image files read, no decoding),
without augmentation and without per-step metrics or ``.item()`` calls. The authors'
loop reads and augments every image from disk in a ``DataLoader`` and reads the loss,
IoU and Dice back to the host at every step. So the ratio here understates nasseg's lead
over the authors' loop. nasseg runs its real path (:func:`nasseg.train.train`,
augmentations on).
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from nasseg.data import DataConfig, load_dataset, split_dataset
from nasseg.errors import ConfigError
from nasseg.train.config import TrainConfig
from nasseg.train.engine import train
from nasseg.train.evaluate import evaluate
from nasseg.train.setup import Runtime, auto_threads, prepare_model
from nasseg.versions import versions


class PlainLoop:
    """A minimal hand-written training loop, one epoch per :meth:`epoch` call.

    Args:
        model: network mapping ``[B, C, *S]`` to ``[B, K, *S]`` (K = 1: binary).
        images: ``[N, C, *S]`` float32, preloaded.
        labels: ``[N, *S]`` integer classes.
        batch_size, lr, weight_decay: as in the nasseg run (AdamW, cosine decay).
        epochs: planned epochs (length of the cosine schedule).
        device: where to train.
        seed: shuffling seed.
    """

    def __init__(self, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 lr: float, weight_decay: float, epochs: int, device: torch.device, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(TensorDataset(images, labels.long()), batch_size=batch_size, shuffle=True,
                                 generator=gen, drop_last=len(images) % batch_size == 1)
        self.model, self.device = model.to(device), device
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=epochs * len(self.loader))

    def epoch(self) -> tuple[float, int]:
        """Train one epoch; returns ``(seconds, images)``."""
        model, device = self.model, self.device
        model.train()
        t0, n = time.perf_counter(), 0
        for x, y in self.loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            if out.shape[1] == 1:
                prob, onehot = torch.sigmoid(out), y[:, None].float()
                loss = F.binary_cross_entropy_with_logits(out, onehot)
            else:
                prob = torch.softmax(out, 1)[:, 1:]
                onehot = F.one_hot(y, out.shape[1]).movedim(-1, 1)[:, 1:].float()
                loss = F.cross_entropy(out, y)
            dims = tuple(range(2, out.ndim))
            inter = (prob * onehot).sum(dims)
            dice = (2 * inter + 1e-5) / (prob.sum(dims) + onehot.sum(dims) + 1e-5)
            loss = loss + (1 - dice).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            n += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, n


def _rate(times: list[tuple[float, int]]) -> float:
    timed = times[1:] if len(times) > 1 else times
    return sum(n for _, n in timed) / sum(t for t, _ in timed)


def bench_train(arch: Any, data: DataConfig, *, epochs: int = 3, batch_size: int = 8, repeats: int = 2,
                device: str = "cpu", num_threads: int | str | None = "auto", lr: float = 2e-3, seed: int = 0,
                out_dir: Path | None = Path("reports/bench"), name: str = "train",
                channels_last: bool = True, echo: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Measure nasseg's and the plain loop's training throughput side by side.

    Args:
        arch: an ``ArchConfig`` (as for :func:`train`).
        data: a dataset whose cases all have one size (2D folders, synthetic).
        epochs: epochs per run (the first is warm-up, not timed); at least 2.
        batch_size: both loops.
        repeats: runs of ``epochs`` alternating epochs each.
        device: ``cpu`` or ``cuda``.
        num_threads: torch CPU threads for both (``"auto"``: resolved once, see
            :func:`nasseg.train.setup.auto_threads`).
        lr: AdamW learning rate of both.
        seed: weights, order, augmentations.
        out_dir: where ``<name>_<device>_<arch>_<data>_<size>.json`` and ``.md`` go
            (``None``: nowhere).
        name: file stem.
        channels_last: nasseg's setting (False compares the loops alone, same tensor layout).
        echo: called with a progress line after every epoch pair.

    Returns:
        ``{"plain_images_per_s", "nasseg_images_per_s", "ratio", "runs": [...], ...}``;
        the rates are medians over repeats, ``ratio`` = nasseg / plain.

    Example:
        >>> r = bench_train(load_arch("cmunext_s"), resolve_data("synthetic"), out_dir=None)  # doctest: +SKIP
        >>> sorted(k for k in r if k.endswith("_per_s"))  # doctest: +SKIP
        ['nasseg_images_per_s', 'plain_images_per_s']
    """
    if epochs < 2:
        raise ConfigError("bench train needs --epochs >= 2 (the first epoch is warm-up)")
    if num_threads == "auto":
        num_threads = auto_threads()
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                      num_threads=num_threads, eval_every=1, amp="off", channels_last=channels_last)
    ds = load_dataset(data)
    if not ds.fixed_size or data.patch_size is not None:
        raise ConfigError("bench train needs cases of one size (2D folders or synthetic data), "
                          "not patches of volumes")
    split = split_dataset(ds, data.split)  # the cases train() below fits, near-duplicates grouped as it does
    index = {c: i for i, c in enumerate(ds.case_ids)}
    train_ds = ds.subset([index[c] for c in split["train"]])
    val_ds = ds.subset([index[c] for c in split["val"]])
    rt = Runtime.create(cfg)
    runs = []
    try:
        for r in range(repeats):
            torch.manual_seed(seed)
            model, _ = prepare_model(arch, ds)
            plain = PlainLoop(model, train_ds.images, train_ds.labels, batch_size=batch_size, lr=lr,
                              weight_decay=cfg.weight_decay, epochs=epochs, device=rt.device, seed=seed)
            plain_times: list[tuple[float, int]] = []
            def plain_epoch(epoch: int, metrics: dict, loop: PlainLoop = plain,
                            times: list[tuple[float, int]] = plain_times, r: int = r) -> None:
                times.append(loop.epoch())
                echo(f"repeat {r + 1}/{repeats}, epoch {epoch}/{epochs}: nasseg {metrics['images_per_s']:.1f}, "
                     f"plain {times[-1][1] / times[-1][0]:.1f} images/s" + (" (warm-up)" if epoch == 1 else ""))

            res = train(arch, data, cfg, progress=False, callback=plain_epoch)
            plain_dice = evaluate(plain.model, val_ds, device=rt.device)[0]["dice"]
            runs.append({"loop": "plain", "repeat": r, "images_per_s": _rate(plain_times),
                         "epoch_seconds": [t for t, _ in plain_times], "dice": plain_dice})
            times = list(zip(res.epoch_seconds, res.epoch_images))
            runs.append({"loop": "nasseg", "repeat": r, "images_per_s": _rate(times),
                         "epoch_seconds": res.epoch_seconds, "dice": res.history[-1]["dice"]})
    finally:
        rt.close()
    plain = statistics.median(x["images_per_s"] for x in runs if x["loop"] == "plain")
    ours = statistics.median(x["images_per_s"] for x in runs if x["loop"] == "nasseg")
    ratios = repeat_ratios(runs)
    report = {
        "what": "training images/s, nasseg train() vs a plain PyTorch loop, same network/data/batch",
        "arch": getattr(arch, "name", None) or type(arch).__name__, "data": data.model_dump(mode="json"),
        "train_cases": len(train_ds), "size": list(ds.shapes()[0]), "batch_size": batch_size,
        "epochs": epochs, "repeats": repeats, "device": str(rt.device),
        "threads": torch.get_num_threads() if num_threads is None else num_threads,
        "channels_last": {"nasseg": cfg.channels_last, "plain": False},
        "baseline": PLAIN_BASELINE,
        "plain_images_per_s": plain, "nasseg_images_per_s": ours, "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)], "repeat_ratios": ratios,
        "ratio_of_medians": ours / plain,
        "runs": runs, "versions": versions(),
    }
    # the settings in the name: a quick run with another network, data or size never
    # replaces a committed result
    report["file_stem"] = "_".join([name, rt.device.type, report["arch"], data.name,
                                    "x".join(map(str, report["size"]))])
    if out_dir is not None:
        write_report(report, Path(out_dir), report["file_stem"])
    return report


PLAIN_BASELINE = ("preloaded decoded tensors (TensorDataset + shuffling DataLoader), no augmentation, "
                  "no per-step metrics or .item(), contiguous fp32: stronger than the CMUNeXt authors' loop "
                  "(images read and augmented from disk, loss/IoU/Dice read every step), so the ratio "
                  "understates nasseg's lead over it")


def repeat_ratios(runs: list[dict[str, Any]]) -> list[float]:
    """nasseg / plain images/s within each repeat (both loops ran interleaved, under one load).

    Example:
        >>> repeat_ratios([{"loop": "plain", "repeat": 0, "images_per_s": 10.0},
        ...                {"loop": "nasseg", "repeat": 0, "images_per_s": 15.0}])
        [1.5]
    """
    by = {(r["loop"], r["repeat"]): r["images_per_s"] for r in runs}
    reps = sorted({r["repeat"] for r in runs})
    return [by[("nasseg", k)] / by[("plain", k)] for k in reps]


def write_report(report: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and a short ``<stem>.md`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        f"# Training throughput: nasseg vs plain PyTorch ({report['device']})", "",
        (f"{report['arch']} on {report['data'].get('path') or report['data']['kind']}, "
         f"{report['train_cases']} training cases of {'x'.join(map(str, report['size']))}, "
         f"batch {report['batch_size']}, {report['epochs']} epochs per loop alternating epoch by epoch "
         f"(first not timed), {report['repeats']} repeat(s), {report['threads']} torch thread(s). "
         f"Plain loop: {report['baseline']}; "
         f"nasseg: train() with on-device augmentation, "
         f"{'channels-last' if report['channels_last']['nasseg'] else 'contiguous'} tensors."), "",
        "| loop | images/s (median) | runs (images/s) | val Dice after run |", "|---|---|---|---|",
    ]
    for loop in ("plain", "nasseg"):
        mine = [r for r in report["runs"] if r["loop"] == loop]
        rates = ", ".join(f"{r['images_per_s']:.1f}" for r in mine)
        dice = ", ".join(f"{r['dice']:.3f}" for r in mine)
        lines.append(f"| {loop} | {report[loop + '_images_per_s']:.1f} | {rates} | {dice} |")
    lo, hi = report["ratio_range"]
    lines += ["", (f"**ratio nasseg / plain: {report['ratio']:.3f}** (median of the per-repeat ratios, "
                   f"range {lo:.3f}-{hi:.3f}; ratio of the medians {report['ratio_of_medians']:.3f})"), "",
              (f"torch {report['versions']['torch']}, python {report['versions']['python']}, "
               f"nasseg {report['versions']['nasseg']}.")]
    md.write_text("\n".join(lines) + "\n")
    return js, md
