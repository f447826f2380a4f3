"""I-GOS and iGOS++: saliency masks optimised along integrated-gradient directions.

I-GOS (Qi, Khorram and Li, AAAI 2020) finds the smallest, smoothest region whose replacement by
a blurred baseline makes the class probability drop; iGOS++ (Khorram et al., CHIL 2021) also
optimises an insertion mask (the region alone must keep the class) and uses a bilateral
total variation that lets mask edges follow image edges. Both are written from the objectives
in the project's reference notes (seed-algorithms §2-3), not from the authors' code.

Batching: every gradient evaluation of one iteration — integration points × terms × images —
goes through the model as one batch (in chunks of `max_batch`), so a GPU stays full. The noise
of integration point s is the same for every image, which makes a batched call and one image
at a time give the same masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from pipeline.methods.common import Score, upsample


@dataclass(frozen=True)
class IgosParams:
    size: int = 28  # mask resolution: 7, 14, 28, 56, 112 or 224
    iterations: int = 15
    steps: int = 20  # integration points S, at s/S for s = 1..S
    l1: float = 1.0  # weight of mean |1 - M|
    tv: float = 20.0  # weight of the (bilateral) total variation
    alpha0: float = 200.0  # line-search start (the I-GOS demo; iGOS++ uses 1000)
    decay: float = 0.2
    armijo: float = 1e-4
    alpha_min: float = 1e-5
    noise: float = 0.2  # std of the Gaussian noise added to every path point (normalised space)
    btv_sigma: float = 0.01  # iGOS++ bilateral weights: exp(-(Δ image)² / σ)
    seed: int = 0
    max_batch: int = 160  # images per forward/backward
    # I-GOS only: the authors' adaptive L1 schedule (§2.5), per image. At iteration ⌊T/2⌋ the L1
    # weight of an image whose masked score has moved by ≤ 0.001 is divided by 10; at ⌊T/1.25⌋, by 5
    # if it has moved by ≤ 0.01. Without it a blur that keeps the class leaves the mask all ones.
    l1_schedule: bool = True
    # iGOS++ only. "end-point": the line search scores the noise-free end points and the product
    # mask is formed on the grid, then upsampled (ours). "integrated": the authors' code — the
    # line search scores the noisy integrated sums and the product is of the upsampled masks.
    line_search: str = "end-point"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


IGOSPP_DEFAULTS = IgosParams(alpha0=1000.0, l1_schedule=False)  # IGOS_pp has no L1 schedule
IGOSPP_AUTHORS = IgosParams(alpha0=1000.0, l1_schedule=False, line_search="integrated")
LINE_SEARCHES = ("end-point", "integrated")


def tv_norm(m: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared neighbour differences of N×1×r×r masks (β = 2)."""
    dv = (m[..., 1:, :] - m[..., :-1, :]).pow(2).flatten(1).mean(1)
    dh = (m[..., :, 1:] - m[..., :, :-1]).pow(2).flatten(1).mean(1)
    return dv + dh


def bilateral_weights(images: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge-stopping weights of iGOS++'s bilateral TV, from the normalised image.

    Vertical pairs average the channel difference first, horizontal pairs average the per-channel
    weights — the two directions differ as in the authors' definition (reference §3.3).
    """
    dv = images[..., 1:, :] - images[..., :-1, :]
    dh = images[..., :, 1:] - images[..., :, :-1]
    wv = torch.exp(-dv.mean(1, keepdim=True).pow(2) / sigma)
    wh = torch.exp(-dh.pow(2) / sigma).mean(1, keepdim=True)
    return wv, wh


def btv_norm(m: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """½ [TV on the grid + weighted squared differences of the upsampled mask]."""
    wv, wh = weights
    up = upsample(m, (wv.shape[-1], wv.shape[-1]))
    dv = (wv * (up[..., 1:, :] - up[..., :-1, :]).pow(2)).flatten(1).mean(1)
    dh = (wh * (up[..., :, 1:] - up[..., :, :-1]).pow(2)).flatten(1).mean(1)
    return 0.5 * (tv_norm(m) + dv + dh)


@dataclass
class _Term:
    """One integrated score in the objective: a mask, deletion or insertion path, and a sign."""

    mask: int  # index into the list of mask tensors (derived masks included)
    insertion: bool
    sign: float


class _Path:
    """Evaluates integrated scores of many (term, step, image) rows in shared batches.

    `derive(leaves)` maps the optimised low-resolution masks (sliced to some images) to the
    full-resolution masks the terms refer to, so each method decides where products are taken.
    """

    def __init__(self, score: Score, images: torch.Tensor, baselines: torch.Tensor, p: IgosParams) -> None:
        self.score, self.images, self.baselines, self.p = score, images, baselines, p
        self.size = (images.shape[-2], images.shape[-1])
        # A deletion path point is B + D·a and an insertion one I − D·a: one multiply per input.
        self.diff = images - baselines
        self.gen = torch.Generator(device=images.device).manual_seed(p.seed)

    def noise(self, terms: int, gen: torch.Generator | None = None) -> torch.Tensor:
        shape = (terms, self.p.steps, *self.images.shape[1:])
        return torch.randn(shape, generator=gen or self.gen, device=self.images.device) * self.p.noise

    def _chunks(self, n: int) -> tuple[int, int]:
        # Chunks of k path points × nb images.
        nb = min(n, self.p.max_batch)
        return nb, max(1, self.p.max_batch // nb)

    def _points(self, term: _Term, s0: int, k: int) -> torch.Tensor:
        s = self.p.steps
        points = torch.arange(s0 + 1, min(s, s0 + k) + 1, device=self.images.device).float() / s
        return points * (-1.0 if term.insertion else 1.0)

    def integrated(self, leaves: list[torch.Tensor], terms: list[_Term], derive: Derive) -> list[torch.Tensor]:
        """Gradient w.r.t. `leaves` of Σ_terms sign · (1/S) Σ_s score(path point s)."""
        n, s = self.images.shape[0], self.p.steps
        noise = self.noise(len(terms))
        # Broadcasting (not gathering) the masks keeps the backward pass a plain sum, which is
        # deterministic on every device.
        nb, k = self._chunks(n)
        grads = [torch.zeros_like(leaf) for leaf in leaves]
        for ti, term in enumerate(terms):
            start = self.images if term.insertion else self.baselines
            for s0 in range(0, s, k):
                points = self._points(term, s0, k)
                for n0 in range(0, n, nb):
                    sl = slice(n0, n0 + nb)
                    up = derive([leaf[sl] for leaf in leaves])[term.mask]
                    a = points.view(-1, 1, 1, 1, 1) * up.unsqueeze(0)
                    x = start[sl].unsqueeze(0) + noise[ti, s0 : s0 + len(points)].unsqueeze(1) + self.diff[sl] * a
                    im = torch.arange(n0, n0 + up.shape[0], device=x.device).repeat(len(points))
                    total = self.score(x.flatten(0, 1), im).sum() * (term.sign / s)
                    for g, dg in zip(grads, torch.autograd.grad(total, leaves, allow_unused=True), strict=True):
                        if dg is not None:  # a term of Md alone has no gradient for Mi
                            g += dg
        return grads

    @torch.no_grad()
    def integrated_value(
        self, masks: list[torch.Tensor], index: torch.Tensor, terms: list[_Term], derive: Derive, gen: torch.Generator
    ) -> torch.Tensor:
        """Σ_terms sign · (1/S) Σ_s score(noisy path point s) of images `index` (the iGOS++ code's
        line-search loss). The noise comes from `gen`, the same for every image."""
        noise = self.noise(len(terms), gen)
        nb, k = self._chunks(len(index))
        out = torch.zeros(len(index), device=self.images.device)
        for ti, term in enumerate(terms):
            start = self.images if term.insertion else self.baselines
            for s0 in range(0, self.p.steps, k):
                points = self._points(term, s0, k)
                for n0 in range(0, len(index), nb):
                    idx = index[n0 : n0 + nb]
                    up = derive([m[n0 : n0 + nb] for m in masks])[term.mask]
                    a = points.view(-1, 1, 1, 1, 1) * up.unsqueeze(0)
                    x = start[idx].unsqueeze(0) + noise[ti, s0 : s0 + len(points)].unsqueeze(1) + self.diff[idx] * a
                    scores = self.score(x.flatten(0, 1), idx.repeat(len(points))).view(len(points), -1)
                    out[n0 : n0 + nb] += scores.sum(0) * (term.sign / self.p.steps)
        return out

    def plain(self, masks: torch.Tensor, index: torch.Tensor, insertion: bool) -> torch.Tensor:
        """Noise-free score of the end point of the path (the I-GOS line search's objective)."""
        out = []
        for start in range(0, len(index), self.p.max_batch):
            idx = index[start : start + self.p.max_batch]
            up = upsample(masks[start : start + self.p.max_batch], self.size)
            x = self.images[idx] - self.diff[idx] * up if insertion else self.baselines[idx] + self.diff[idx] * up
            out.append(self.score(x, idx))
        return torch.cat(out)


Derive = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def _line_search(
    objective: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor],
    masks: list[torch.Tensor],
    direction: list[torch.Tensor],
    p: IgosParams,
) -> torch.Tensor:
    """Backtracking with the revised Armijo test, per image; returns the step size of each image.

    As in the I-GOS demo: start at alpha0, shrink by `decay` while F(M - αd) > F(M) - c·α·‖d‖²,
    stop shrinking below alpha_min (that last α is used). Only images still searching are scored,
    and every image still searching is at the same trial, so `objective` is called once for F(M)
    and then once per trial.
    """
    n = masks[0].shape[0]
    device = masks[0].device
    everyone = torch.arange(n, device=device)
    f0 = objective(masks, everyone)
    norm2 = sum(d.pow(2).flatten(1).sum(1) for d in direction)
    assert isinstance(norm2, torch.Tensor)
    alpha = torch.full((n,), float(p.alpha0), device=device, dtype=masks[0].dtype)
    active = torch.ones(n, dtype=torch.bool, device=device)
    while bool(active.any()):
        idx = everyone[active]
        a = alpha[idx].view(-1, 1, 1, 1)
        trial = [(m[idx] - a * d[idx]).clamp(0, 1) for m, d in zip(masks, direction, strict=True)]
        fails = objective(trial, idx) > f0[idx] - p.armijo * alpha[idx] * norm2[idx]
        alpha[idx[fails]] = alpha[idx[fails]] * p.decay
        still = torch.zeros_like(active)
        still[idx[fails]] = True
        active = still & (alpha >= p.alpha_min)
    return alpha


def adapt_l1(l1: torch.Tensor, scores: list[torch.Tensor], i: int, iterations: int) -> torch.Tensor:
    """The I-GOS authors' adaptive L1 weight after iteration i (0-based), per image.

    `scores[j]` is the noise-free masked score at the start of iteration j (scores[0]: the image
    itself). As in their code, at i = ⌊T/2⌋ the score two updates back (start of iteration i − 1)
    is compared with the first: moved by ≤ 0.001 → L1 ÷ 10; at i = ⌊T/1.25⌋, moved by ≤ 0.01 → ÷ 5.
    Only for T > 3. The new weight holds from iteration i + 1 (gradient and line search).
    """
    if iterations <= 3:
        return l1
    for at, moved, factor in ((iterations // 2, 0.001, 10.0), (int(iterations / 1.25), 0.01, 5.0)):
        if i == at:
            still = (scores[0] - scores[i - 1]).abs() <= moved
            return torch.where(still, l1 / factor, l1)
    return l1


def igos_trace(
    score: Score, images: torch.Tensor, baselines: torch.Tensor, p: IgosParams = IgosParams()
) -> tuple[torch.Tensor, torch.Tensor]:
    """I-GOS masks (N×1×r×r) and the L1 weight each image used at each iteration (N×T)."""
    n = images.shape[0]
    path = _Path(score, images, baselines, p)
    mask = torch.ones((n, 1, p.size, p.size), device=images.device)
    terms = [_Term(0, insertion=False, sign=1.0)]
    everyone = torch.arange(n, device=images.device)
    l1 = torch.full((n,), float(p.l1), device=images.device)
    used, scores = [], []

    def derive(ls: list[torch.Tensor]) -> list[torch.Tensor]:
        return [upsample(ls[0], path.size)]

    def objective(ms: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            m = ms[0]
            return path.plain(m, idx, insertion=False) + l1[idx] * (1 - m).abs().flatten(1).mean(1) + p.tv * tv_norm(m)

    for i in range(p.iterations):
        used.append(l1)
        if p.l1_schedule:
            with torch.no_grad():
                scores.append(path.plain(mask, everyone, insertion=False))
        leaf = mask.clone().requires_grad_(True)
        reg = (l1 * (1 - leaf).abs().flatten(1).mean(1) + p.tv * tv_norm(leaf)).sum()
        (g_reg,) = torch.autograd.grad(reg, [leaf])
        (g_int,) = path.integrated([leaf], terms, derive)
        direction = g_reg + g_int
        alpha = _line_search(objective, [mask], [direction], p)
        mask = (mask - alpha.view(-1, 1, 1, 1) * direction).clamp(0, 1).detach()
        if p.l1_schedule:
            l1 = adapt_l1(l1, scores, i, p.iterations)
    return mask, torch.stack(used, 1)


def igos(score: Score, images: torch.Tensor, baselines: torch.Tensor, p: IgosParams = IgosParams()) -> torch.Tensor:
    """I-GOS masks (N×1×r×r, 1 = keep). Saliency is 1 − mask.

    Minimises p_c(Φ(I, B, M)) + λ1·mean|1−M| + λ2·TV(M) with integrated-gradient directions,
    λ1 adapted per image as the authors do (`l1_schedule`).
    `score` must be differentiable; the model behind it should be frozen (see common.frozen).
    """
    return igos_trace(score, images, baselines, p)[0]


def igos_pp(
    score: Score, images: torch.Tensor, baselines: torch.Tensor, p: IgosParams = IGOSPP_DEFAULTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """iGOS++ deletion and insertion masks; the explanation is their product (saliency = 1 − Md·Mi).

    L = Del(Md) − Ins(Mi) + Del(M) − Ins(M) + λ1·mean|1−M| + λ2·BTV(I, M), M = Md ⊙ Mi.
    As the authors do, the four integrated terms' gradient is halved before the regulariser's is
    added. `line_search="end-point"` (ours) scores the noise-free end points and takes the product
    on the grid; "integrated" follows the authors' code: the line search scores the noisy
    integrated sums (fresh noise per trial, drawn from a generator seeded by seed, iteration and
    trial, so runs repeat) and the product terms use up(Md)·up(Mi). Regularisers are on Md·Mi.
    """
    if p.line_search not in LINE_SEARCHES:
        raise ValueError(f"line_search must be one of {LINE_SEARCHES}, not {p.line_search!r}")
    authors = p.line_search == "integrated"
    n = images.shape[0]
    path = _Path(score, images, baselines, p)
    weights = bilateral_weights(images, p.btv_sigma)
    m_del = torch.ones((n, 1, p.size, p.size), device=images.device)
    m_ins = torch.ones_like(m_del)
    # masks 0 = Md, 1 = Mi, 2 = Md·Mi
    terms = [_Term(0, False, 1.0), _Term(1, True, -1.0), _Term(2, False, 1.0), _Term(2, True, -1.0)]

    def derive(leaves: list[torch.Tensor]) -> list[torch.Tensor]:
        up_d, up_i = upsample(leaves[0], path.size), upsample(leaves[1], path.size)
        both = up_d * up_i if authors else upsample(leaves[0] * leaves[1], path.size)
        return [up_d, up_i, both]

    def reg(m: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        w = (weights[0][idx], weights[1][idx])
        return p.l1 * (1 - m).abs().flatten(1).mean(1) + p.tv * btv_norm(m, w)

    def end_points(ms: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            md, mi = ms
            m = md * mi
            return (
                path.plain(md, idx, False)
                - path.plain(mi, idx, True)
                + path.plain(m, idx, False)
                - path.plain(m, idx, True)
                + reg(m, idx)
            )

    def integrated(it: int) -> Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]:
        trials = iter(range(1_000_000))

        def loss(ms: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
            # One seed per (run seed, iteration, trial): every image at that trial sees the same noise.
            gen = torch.Generator(device=images.device).manual_seed(p.seed * 1_000_003 + it * 1_009 + next(trials) + 1)
            with torch.no_grad():
                return path.integrated_value(ms, idx, terms, derive, gen) + reg(ms[0] * ms[1], idx)

        return loss

    everyone = torch.arange(n, device=images.device)
    for it in range(p.iterations):
        leaves = [m_del.clone().requires_grad_(True), m_ins.clone().requires_grad_(True)]
        g_reg = torch.autograd.grad(reg(leaves[0] * leaves[1], everyone).sum(), leaves)
        g_int = path.integrated(leaves, terms, derive)
        direction = [gi / 2 + gr for gi, gr in zip(g_int, g_reg, strict=True)]
        objective = integrated(it) if authors else end_points
        alpha = _line_search(objective, [m_del, m_ins], direction, p).view(-1, 1, 1, 1)
        m_del = (m_del - alpha * direction[0]).clamp(0, 1).detach()
        m_ins = (m_ins - alpha * direction[1]).clamp(0, 1).detach()
    return m_del, m_ins
