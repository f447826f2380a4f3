"""Training loop for the classifier: tensors in, a trained model and its history out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models.architectures import Classifier
from pipeline.models.images import normalise


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    max_shift: int = 12  # pixels of random translation
    seed: int = 0


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random horizontal flip and translation (birds face both ways and sit anywhere)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1).to(x.device), x.flip(3), x)
    if max_shift > 0:
        pad = F.pad(x, (max_shift,) * 4, mode="replicate")
        dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
        dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
        h, w = x.shape[2:]
        x = torch.stack([pad[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return x


def train(
    model: Classifier,
    images: torch.Tensor,  # N×3×S×S uint8
    labels: torch.Tensor,  # N, class indices
    transform: dict[str, Any],
    cfg: TrainConfig,
    device: torch.device,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device).train()
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(images) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.2
    )
    history: list[dict[str, float]] = []
    total_steps, step = cfg.epochs * steps_per_epoch, 0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(images), generator=gen)
        seen, correct, loss_sum = 0, 0, 0.0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = normalise(augment(images[idx], gen, cfg.max_shift), transform).to(device)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(idx)
            step += 1
            if progress:
                progress(step, total_steps, {"epoch": epoch + 1, "loss": loss_sum / seen, "acc": correct / seen})
        history.append(
            {
                "epoch": epoch + 1,
                "loss": round(loss_sum / seen, 5),
                "train_accuracy": round(correct / seen, 5),
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    model.eval()
    model.to(memory_format=torch.contiguous_format)
    return history


@torch.no_grad()
def predict_probs(
    model: Classifier, images: torch.Tensor, transform: dict[str, Any], device: torch.device, batch_size: int = 128
) -> np.ndarray:
    """Softmax probabilities, N × classes, float64 numpy (in eval mode; the model is left as found)."""
    was_training = model.training
    model.eval().to(device)
    out = []
    for i in range(0, len(images), batch_size):
        x = normalise(images[i : i + batch_size], transform).to(device)
        out.append(torch.softmax(model(x).float(), 1).cpu())
    model.train(was_training)
    return torch.cat(out).double().numpy() if out else np.zeros((0, model.head.out_features))


@torch.no_grad()
def features_and_logits(
    model: Classifier, images: torch.Tensor, transform: dict[str, Any], device: torch.device, batch_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (N×D) and logits (N×classes) of uint8 images, on the CPU."""
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(normalise(images[i : i + batch_size].to(device), transform))
        feats.append(f.cpu())
        logits.append(model.head(f).cpu())
    return torch.cat(feats), torch.cat(logits)
