"""XNN concept explanations (Qi, Khorram and Li), written from the reference notes (§5).

One sparse reconstruction autoencoder (SRAE) per class embeds the classifier's penultimate
features into k non-negative "x-features", from which a linear layer rebuilds the class logit:
the explanation of a prediction is which x-features contributed (z_j · w_j) and where in the
image each fires.

Loss = α_pred · MSE(ŷ, y) + α_rec · log-penalty reconstruction + α_pt · pull-away term on the
contributions. Training: greedy layer-wise pre-training (three single-layer autoencoders and a
linear regressor), then joint training with Adam; an acceptance loop retrains with more
reconstruction and less pull-away weight until at least two x-features contribute positively
and the second contributes at least 0.3 × the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class XnnParams:
    k: int = 5  # x-features per class
    alpha_pred: float = 1.0
    alpha_rec: float = 10.0
    alpha_pt: float = 10.0
    q: float = 100.0  # log-penalty sharpness
    pull_away: str = "images"  # "images": cosine between images' contribution vectors (the CUB code);
    # "features": between x-feature columns (the "orthogonal bases" reading of the paper)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 50
    pretrain_epochs: int = 10
    epochs: int = 60
    lr_step: int = 40  # lr × 0.1 every lr_step epochs
    dropout: float = 0.02
    max_rounds: int = 5  # acceptance loop
    second_ratio: float = 0.3
    significant: float = 0.9  # significant x-features cover this share of the positive score
    gallery: int = 4  # training images per concept in the report (concepts with positive mean contribution)
    seed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def training_dict(self) -> dict[str, object]:
        """The parameters that change the trained XNNs (the cache key): not how they are reported."""
        return {k: v for k, v in asdict(self).items() if k not in ("significant", "gallery")}


def hidden_sizes(d: int) -> tuple[int, int]:
    """The paper's 4096 → 800 → 100 → k, shrunk for narrower feature layers."""
    h1 = min(800, d)
    return h1, min(100, max(16, h1 // 2))


class SRAE(nn.Module):
    """Encoder D → h1 → h2 → k (ReLU: x-features are non-negative), regressor k → 1, decoder k → D."""

    def __init__(self, d: int, k: int, dropout: float = 0.02) -> None:
        super().__init__()
        h1, h2 = hidden_sizes(d)
        self.enc = nn.ModuleList([nn.Linear(d, h1), nn.Linear(h1, h2), nn.Linear(h2, k)])
        self.dec = nn.ModuleList([nn.Linear(k, h2), nn.Linear(h2, h1), nn.Linear(h1, d)])
        self.out = nn.Linear(k, 1)
        self.drop = nn.Dropout(dropout)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(F.relu(self.enc[0](x)))
        h = F.relu(self.enc[1](h))
        return F.relu(self.enc[2](h))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.dec:
            h = F.relu(layer(h))
        return h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.out(z).squeeze(1), self.decode(z)

    def contributions(self, z: torch.Tensor) -> torch.Tensor:
        """z_j · w_j: how much each x-feature adds to the rebuilt logit (the bias is not a concept)."""
        return z * self.out.weight[0]

    def linears(self) -> tuple[list[nn.Linear], list[nn.Linear]]:
        """Encoder and decoder layers, typed."""
        return [cast(nn.Linear, m) for m in self.enc], [cast(nn.Linear, m) for m in self.dec]


def log_penalty(x_hat: torch.Tensor, x: torch.Tensor, q: float) -> torch.Tensor:
    """mean_d log(1 + q · mean_batch (x̂_d − x_d)²): concave, so some dimensions may be given up."""
    return torch.log1p(q * (x_hat - x).pow(2).mean(0)).mean()


def pull_away(e: torch.Tensor, over: str) -> torch.Tensor:
    """Mean squared cosine similarity between distinct rows (images) or columns (x-features)."""
    v = e if over == "images" else e.t()
    n = v.shape[0]
    if n < 2:
        return e.new_zeros(())
    u = F.normalize(v, dim=1, eps=1e-8)
    cos = u @ u.t()
    return (cos.pow(2).sum() - cos.diagonal().pow(2).sum()) / (n * (n - 1))


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    return [order[i : i + size] for i in range(0, n, size)]


class _Stack(nn.Module):
    """C SRAEs with stacked weights, trained together: one class's loss never touches another's
    parameters (Adam and weight decay act element-wise), so this equals training them one by one
    on the same batches, at a fraction of the cost. Initialised from `models`."""

    def __init__(self, models: list[SRAE]) -> None:
        super().__init__()

        def stack(layers: list[nn.Linear]) -> tuple[nn.Parameter, nn.Parameter]:
            return (
                nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone()),
                nn.Parameter(torch.stack([m.bias.detach() for m in layers]).clone()),
            )

        layers = [m.linears() for m in models]
        self.enc = nn.ParameterList([w for i in range(3) for w in stack([enc[i] for enc, _ in layers])])
        self.dec = nn.ParameterList([w for i in range(3) for w in stack([dec[i] for _, dec in layers])])
        self.out = nn.ParameterList(stack([m.out for m in models]))
        self.dropout = models[0].drop.p

    @staticmethod
    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """x: C×B×in (or B×in, shared) → C×B×out."""
        eq = "bi,coi->cbo" if x.dim() == 2 else "cbi,coi->cbo"
        return torch.einsum(eq, x, w) + b[:, None, :]

    def layer(self, part: nn.ParameterList, i: int, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(x, part[2 * i], part[2 * i + 1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.dropout(self.layer(self.enc, 0, x), self.dropout, self.training)
        z = self.layer(self.enc, 2, self.layer(self.enc, 1, h))
        y = self.linear(z, self.out[0], self.out[1]).squeeze(2)
        x_hat = self.layer(self.dec, 2, self.layer(self.dec, 1, self.layer(self.dec, 0, z)))
        return z, y, x_hat

    def contributions(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.out[0][:, 0][:, None, :]

    def export(self, c: int, into: SRAE) -> SRAE:
        enc, dec = into.linears()
        with torch.no_grad():
            for i in range(3):
                enc[i].weight.copy_(self.enc[2 * i][c])
                enc[i].bias.copy_(self.enc[2 * i + 1][c])
                dec[i].weight.copy_(self.dec[2 * i][c])
                dec[i].bias.copy_(self.dec[2 * i + 1][c])
            into.out.weight.copy_(self.out[0][c])
            into.out.bias.copy_(self.out[1][c])
        return into.eval()


def _pretrain(st: _Stack, x: torch.Tensor, y: torch.Tensor, p: XnnParams, gen: torch.Generator) -> None:
    """Greedy layer-wise: each encoder layer with its mirror decoder layer as a one-layer
    autoencoder on the previous codes (MSE), then the regressor on the final codes."""
    codes = x  # shared by every class at first: N×D, then C×N×h
    for i in range(3):
        params = [st.enc[2 * i], st.enc[2 * i + 1], st.dec[2 * (2 - i)], st.dec[2 * (2 - i) + 1]]
        opt = torch.optim.Adam(params, lr=p.lr)
        for _ in range(p.pretrain_epochs):
            for idx in _batches(x.shape[0], p.batch_size, gen):
                batch = codes[idx] if codes.dim() == 2 else codes[:, idx]
                rebuilt = st.layer(st.dec, 2 - i, st.layer(st.enc, i, batch))
                target = batch.expand_as(rebuilt)
                loss = (rebuilt - target).pow(2).mean((1, 2)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            codes = st.layer(st.enc, i, codes)
    opt = torch.optim.Adam(list(st.out), lr=p.lr * 10)
    for _ in range(p.pretrain_epochs * 5):
        for idx in _batches(x.shape[0], p.batch_size, gen):
            y_hat = st.linear(codes[:, idx], st.out[0], st.out[1]).squeeze(2)
            loss = (y_hat - y[:, idx]).pow(2).mean(1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()


def _pull_away_stacked(e: torch.Tensor, over: str) -> torch.Tensor:
    """Per class (first axis): mean squared cosine between distinct images or x-features."""
    v = e if over == "images" else e.transpose(1, 2)
    n = v.shape[1]
    if n < 2:
        return e.new_zeros(e.shape[0])
    u = F.normalize(v, dim=2, eps=1e-8)
    cos = u @ u.transpose(1, 2)
    return (cos.pow(2).sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).pow(2).sum(1)) / (n * (n - 1))


def _joint(
    st: _Stack,
    x: torch.Tensor,
    y: torch.Tensor,
    p: XnnParams,
    rec: torch.Tensor,
    pt: torch.Tensor,
    gen: torch.Generator,
) -> None:
    opt = torch.optim.Adam(st.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.lr_step, gamma=0.1)
    st.train()
    for _ in range(p.epochs):
        for idx in _batches(x.shape[0], p.batch_size, gen):
            z, y_hat, x_hat = st(x[idx])
            pred = (y_hat - y[:, idx]).pow(2).mean(1)
            recon = torch.log1p(p.q * (x_hat - x[idx]).pow(2).mean(1)).mean(1)
            loss = (p.alpha_pred * pred + rec * recon + pt * _pull_away_stacked(st.contributions(z), p.pull_away)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    st.eval()


@dataclass
class TrainedXnn:
    model: SRAE
    rounds: int
    accepted: bool
    mean_contribution: list[float]  # per x-feature, over the training set
    alpha_rec: float
    alpha_pt: float


def train_xnns(x: torch.Tensor, y: torch.Tensor, p: XnnParams = XnnParams()) -> list[TrainedXnn]:
    """One SRAE per column of y (N×C logits) on features x (N×D), trained together.

    The acceptance loop retrains only the classes that fail, with α_rec × 1.2 and α_pt × 0.8.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny steps: threads only add synchronisation
    try:
        return _train_xnns(x, y, p)
    finally:
        torch.set_num_threads(threads)


def _train_xnns(x: torch.Tensor, y: torch.Tensor, p: XnnParams) -> list[TrainedXnn]:
    c_all = y.shape[1]
    rec = torch.full((c_all,), p.alpha_rec)
    pt = torch.full((c_all,), p.alpha_pt)
    result: list[TrainedXnn | None] = [None] * c_all
    todo = list(range(c_all))
    for round_ in range(1, p.max_rounds + 1):
        torch.manual_seed(p.seed + round_)
        gen = torch.Generator().manual_seed(p.seed + round_)
        models = [SRAE(x.shape[1], p.k, p.dropout) for _ in todo]
        st = _Stack(models)
        _pretrain(st, x, y[:, todo].t(), p, gen)
        _joint(st, x, y[:, todo].t(), p, rec[todo], pt[todo], gen)
        with torch.no_grad():
            z, _, _ = st(x)
            means = st.contributions(z).mean(1)
        failed = []
        for k, c in enumerate(todo):
            mean = means[k]
            top = torch.sort(mean, descending=True).values
            accepted = bool((mean > 0).sum() >= 2 and top[1] >= p.second_ratio * top[0])
            result[c] = TrainedXnn(
                st.export(k, models[k]), round_, accepted, mean.tolist(), float(rec[c]), float(pt[c])
            )
            if not accepted:
                failed.append(c)
        todo = failed
        if not todo:
            break
        rec[todo] *= 1.2
        pt[todo] *= 0.8
    return [r for r in result if r is not None]


def train_xnn(x: torch.Tensor, y: torch.Tensor, p: XnnParams = XnnParams()) -> TrainedXnn:
    """One class: features x (N×D) to that class's logit y (N)."""
    return train_xnns(x, y[:, None], p)[0]


def significant(contributions: torch.Tensor, share: float = 0.9) -> list[int]:
    """The fewest x-features with positive contribution that cover `share` of the positive score,
    largest first."""
    pos = [(float(c), j) for j, c in enumerate(contributions.tolist()) if c > 0]
    pos.sort(reverse=True)
    total = sum(c for c, _ in pos)
    out, acc = [], 0.0
    for c, j in pos:
        if acc >= share * total:
            break
        out.append(j)
        acc += c
    return out


@dataclass
class Faithfulness:
    """How well each class's XNN rebuilds the classifier's logit, on held-out images."""

    rmse: list[float]  # per class
    logit_range: list[float]  # per class: max − min of the logit on those images
    accuracy_xnn: float  # argmax over the rebuilt logits
    accuracy_classifier: float  # argmax over the real logits
    agreement: float  # share of images where both argmaxes agree


def faithfulness(xnns: list[SRAE], x: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> Faithfulness:
    with torch.no_grad():
        rebuilt = torch.stack([m(x)[1] for m in xnns], 1)
    rmse = (rebuilt - logits).pow(2).mean(0).sqrt()
    span = logits.max(0).values - logits.min(0).values
    pred_x, pred_c = rebuilt.argmax(1), logits.argmax(1)
    return Faithfulness(
        rmse.tolist(),
        span.tolist(),
        float((pred_x == labels).float().mean()),
        float((pred_c == labels).float().mean()),
        float((pred_x == pred_c).float().mean()),
    )


class ConceptScore:
    """x-feature j of class c's XNN, through the classifier's feature layer, relative to its value
    on the original image: a differentiable score I-GOS can explain (rows pick class and unit)."""

    def __init__(
        self, model: nn.Module, xnns: list[SRAE], classes: torch.Tensor, units: torch.Tensor, reference: torch.Tensor
    ) -> None:
        self.model, self.xnns = model, xnns
        self.classes, self.units, self.reference = classes, units, reference

    def __call__(self, x: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        feats = self.model.features(x)  # type: ignore[operator]
        cls = self.classes.to(x.device)[image_index]
        unit = self.units.to(x.device)[image_index]
        out = torch.empty(len(x), device=x.device)
        for c in cls.unique().tolist():
            rows = (cls == c).nonzero().squeeze(1)
            z = self.xnns[c].encode(feats[rows])
            out[rows] = z.gather(1, unit[rows].unsqueeze(1)).squeeze(1)
        return out / self.reference.to(x.device)[image_index].clamp(min=1e-6)
