"""The CMUNeXt authors' style of training loop, the baseline of ``nasseg bench gpu``.

Written after the training script of CMUNeXt (Tang et al., ISBI 2024; github
FengheTan9/CMUNeXt, ``main.py``): a ``Dataset`` that reads every image and mask from
disk at every step (PIL here, OpenCV there), augments it on the CPU (random 90-degree
rotation and flip) and normalises it with the ImageNet mean and std; a shuffling
``DataLoader`` with 8 worker processes and no pinned memory; full precision; SGD 0.01,
momentum 0.9, weight decay 1e-4, poly decay set per step; ``0.5 * BCE + Dice``; and,
after every step, the loss read with ``.item()`` and IoU/Dice computed in NumPy on the
predictions copied to the host (their ``iou_score``). This is the loop nasseg's
training throughput is compared against; it is not a strawman: the data loader
overlaps decoding with the GPU, as theirs does.

Example:
    >>> loop = DiskLoop(model, pairs, size=256, batch_size=8, device=torch.device("cuda"))  # doctest: +SKIP
    >>> seconds, images = loop.epoch()  # doctest: +SKIP
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class DiskCases(Dataset):
    """Image/mask files decoded, resized, augmented and normalised at every access.

    Args:
        pairs: ``[(image_path, [mask_paths])]`` (as :func:`nasseg.data.folder.find_pairs`).
        size: square side the cases are resized to.
        seed: seeds the per-item augmentation (with the item index and epoch).
        channels: 3 (RGB, the authors' setting) or 1 (grey, normalised with the mean of
            the ImageNet statistics), as the network takes.
    """

    def __init__(self, pairs: list[tuple[Path, list[Path]]], size: int, seed: int = 0, channels: int = 3) -> None:
        self.pairs, self.size, self.seed, self.epoch = pairs, size, seed, 0
        self.mode = "RGB" if channels == 3 else "L"
        self.mean, self.std = (MEAN, STD) if channels == 3 else (MEAN.mean(keepdims=True), STD.mean(keepdims=True))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img_path, mask_paths = self.pairs[i]
        image = Image.open(img_path).convert(self.mode).resize((self.size, self.size), Image.BILINEAR)
        mask = np.zeros((self.size, self.size), bool)
        for p in mask_paths:
            m = Image.open(p).convert("L").resize((self.size, self.size), Image.NEAREST)
            mask |= np.asarray(m) > 127
        x = np.asarray(image, np.float32).reshape(self.size, self.size, -1) / 255.0
        rng = np.random.default_rng((self.seed, self.epoch, i))
        k = int(rng.integers(4))
        x, mask = np.rot90(x, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            x, mask = x[:, ::-1], mask[:, ::-1]
        x = (x - self.mean) / self.std
        return (torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(mask[None], dtype=np.float32)))


def bce_dice(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' ``BCEDiceLoss``: ``0.5 * BCE + (1 - Dice)`` per sample, smooth 1e-5."""
    bce = F.binary_cross_entropy_with_logits(output, target)
    prob = torch.sigmoid(output).flatten(1)
    t = target.flatten(1)
    dice = (2 * (prob * t).sum(1) + 1e-5) / (prob.sum(1) + t.sum(1) + 1e-5)
    return 0.5 * bce + (1 - dice).mean()


def iou_dice(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """The authors' per-step ``iou_score``: on the host, in NumPy."""
    pred = torch.sigmoid(output).detach().cpu().numpy() > 0.5
    t = target.detach().cpu().numpy() > 0.5
    inter, union = (pred & t).sum(), (pred | t).sum()
    iou = (inter + 1e-5) / (union + 1e-5)
    return float(iou), float(2 * iou / (iou + 1))


class DiskLoop:
    """One epoch per :meth:`epoch` call, the authors' way (see the module docstring).

    Args:
        model: binary network ``[B, channels, S, S] -> [B, 1, S, S]`` (deep supervision: first output).
        pairs: the training cases' files.
        size, batch_size: as nasseg's run.
        device: where the network trains.
        workers: ``DataLoader`` worker processes (the authors use 8).
        lr, momentum, weight_decay: their SGD settings.
        epochs: planned epochs (length of their poly schedule).
        channels: the network's input channels (see :class:`DiskCases`).
    """

    def __init__(self, model: torch.nn.Module, pairs: list[tuple[Path, list[Path]]], *, size: int,
                 batch_size: int, device: torch.device, workers: int = 4, lr: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 1e-4, epochs: int = 300, seed: int = 0,
                 channels: int = 3) -> None:
        self.cases = DiskCases(pairs, size, seed, channels)
        gen = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(self.cases, batch_size=batch_size, shuffle=True, num_workers=workers,
                                 pin_memory=False, drop_last=len(pairs) % batch_size == 1, generator=gen)
        self.model, self.device = model.to(device), device
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.base_lr, self.step, self.max_steps = lr, 0, max(1, epochs * len(self.loader))
        self.meters: list[tuple[float, float, float]] = []

    def epoch(self) -> tuple[float, int]:
        """Train one epoch; returns ``(seconds, images)``."""
        self.model.train()
        t0, n = time.perf_counter(), 0
        for x, y in self.loader:
            x, y = x.to(self.device), y.to(self.device)
            out = self.model(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            loss = bce_dice(out, y)
            iou, dice = iou_dice(out, y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.step += 1
            for group in self.opt.param_groups:
                group["lr"] = self.base_lr * (1.0 - self.step / self.max_steps) ** 0.9
            self.meters.append((loss.item(), iou, dice))
            n += x.shape[0]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.cases.epoch += 1
        return time.perf_counter() - t0, n
