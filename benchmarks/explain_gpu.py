"""`make bench-explain-gpu`: I-GOS and iGOS++ timing on torchvision ResNet-50 at 224 px (CUDA only).

Random weights (timing does not depend on them), 28×28 masks, 15 iterations, 20 integration
points, fp32. Measures, on the same GPU:
- the floor: ResNet-50 input-gradient throughput (images/s); I-GOS needs ~300 of them per image;
- I-GOS and iGOS++ seconds per image for several image batch sizes;
- that a batched call gives the same masks as one image at a time.
Prints a markdown section and writes it to var/bench/gpu.md. Meant to run as one prepared
script on a lent GPU machine within a few minutes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from pipeline.methods.common import ClassProbability, frozen, gaussian_blur
from pipeline.methods.igos import IGOSPP_DEFAULTS, IgosParams, igos, igos_pp
from pipeline.methods.sag import SagParams, search
from pipeline.models.architectures import build

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def sync() -> None:
    torch.cuda.synchronize()


def images(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(n)
    pix = torch.rand((n, 3, 224, 224), generator=gen)
    blurred = gaussian_blur(pix, 51, 50.0)
    norm = lambda t: ((t - IMAGENET_MEAN) / IMAGENET_STD).to(device)  # noqa: E731
    return norm(pix), norm(blurred)


def gradient_throughput(model: torch.nn.Module, device: torch.device, batch: int = 128, reps: int = 10) -> float:
    x = torch.randn(batch, 3, 224, 224, device=device)
    target = torch.zeros(batch, dtype=torch.long, device=device)
    score = ClassProbability(model, target)
    for _ in range(3):
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(score(xi, torch.arange(batch, device=device)).sum(), [xi])
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(score(xi, torch.arange(batch, device=device)).sum(), [xi])
    sync()
    return batch * reps / (time.perf_counter() - t0)


def time_method(fn, model, n: int, p: IgosParams, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    x, b = images(n, device)
    score = ClassProbability(model, torch.zeros(n, dtype=torch.long, device=device))
    sync()
    t0 = time.perf_counter()
    fn(score, x, b, p)
    sync()
    return (time.perf_counter() - t0) / n


def main() -> int:
    if not torch.cuda.is_available():
        print("bench-explain-gpu needs a CUDA device; none is available here", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0)
    model = build("resnet50", 1000).to(device).eval()
    lines = [
        "## I-GOS / iGOS++ on a GPU (`make bench-explain-gpu`)",
        "",
        f"GPU: {name}; torch {torch.__version__}; ResNet-50 (random weights), 224×224, 28×28 masks, "
        "15 iterations, 20 integration points.",
        "",
    ]
    with frozen(model):
        for mode, tf32 in (("fp32 (TF32 off)", False), ("fp32 with cuDNN TF32 (PyTorch default)", True)):
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = False
            rate = gradient_throughput(model, device)
            floor = 300 / rate
            lines += [
                f"### {mode}",
                "",
                f"- input-gradient throughput: {rate:,.0f} images/s, so the floor for "
                f"I-GOS's ~300 gradients is {floor:.3f} s/image",
                "",
            ]
            lines += [
                "| method | images per call | max inputs per forward | s / image | × floor |",
                "|---|---|---|---|---|",
            ]
            time_method(igos, model, 2, IgosParams(iterations=1, max_batch=40), device)  # warm-up
            for n, mb in ((1, 20), (8, 160), (32, 320)):
                s = time_method(igos, model, n, IgosParams(max_batch=mb), device)
                lines.append(f"| I-GOS | {n} | {mb} | {s:.3f} | {s / floor:.2f} |")
            for n, mb in ((1, 80), (8, 320), (16, 320)):
                s = time_method(igos_pp, model, n, replace(IGOSPP_DEFAULTS, max_batch=mb), device)
                lines.append(f"| iGOS++ | {n} | {mb} | {s:.3f} | {s / floor:.2f} |")
            lines.append("")
        torch.backends.cudnn.allow_tf32 = False
        x, b = images(4, device)
        score = ClassProbability(model, torch.zeros(4, dtype=torch.long, device=device))
        batched = igos(score, x, b, IgosParams(max_batch=80))
        worst = 0.0
        for i in range(4):
            one = ClassProbability(model, torch.zeros(1, dtype=torch.long, device=device))
            alone = igos(one, x[i : i + 1], b[i : i + 1], IgosParams(max_batch=20))
            worst = max(worst, float((alone - batched[i : i + 1]).abs().max()))
        lines.append(f"Batched vs one image at a time (4 images, fp32): largest mask difference {worst:.2e}.")
        lines += ["", "### Structured attention graphs", ""]
        x, b = images(8, device)
        sag_times, forwards, calls = [], [], []
        search(
            ClassProbability(model, torch.zeros(1, dtype=torch.long, device=device)),
            x[:1],
            b[:1],
            SagParams(max_batch=256),
        )  # warm-up
        for i in range(8):
            score = ClassProbability(model, torch.zeros(1, dtype=torch.long, device=device))
            sync()
            t0 = time.perf_counter()
            found = search(score, x[i : i + 1], b[i : i + 1], SagParams(max_batch=256))
            sync()
            sag_times.append(time.perf_counter() - t0)
            forwards.append(found.forwards)
            calls.append(found.calls)
        lines.append(
            f"SAG search + graph + questions on 8 random images: {sum(sag_times) / 8:.3f} s/image, "
            f"{sum(forwards) / 8:.0f} masked images and {sum(calls) / 8:.0f} batched calls per image."
        )
    text = "\n".join(lines) + "\n"
    out = Path("var/bench/gpu.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
