"""The XNN stage of `fieldmark explain --methods xnn`: learn concepts, explain images with them.

1. Penultimate features and every class's logit for the training and test splits (the run's
   shared feature cache); one SRAE per class trained on the training split, cached by a hash
   of the features and the parameters.
2. Faithfulness on the test split: RMSE of each rebuilt logit, and accuracy when every logit is
   replaced by its XNN's output.
3. Per image (predicted class, and the true class when the model is wrong): contributions,
   the significant concepts, an I-GOS heatmap of where each fires (I-GOS on the concept's
   activation relative to its value on the image, through the combined network), and a card.
4. Per concept with a positive mean contribution: a gallery of the training images where it is
   strongest, with heatmaps; and on data with part segmentations, the share of its heatmaps on
   each part and a suggested name.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.data.cub import ImageRecord
from pipeline.explain import parts
from pipeline.explain.features import split_features
from pipeline.explain.registry import Method
from pipeline.explain.work import Bar, Work
from pipeline.io import atomic_write_bytes
from pipeline.methods.common import blurred_baseline
from pipeline.methods.igos import IgosParams, igos
from pipeline.methods.xnn import SRAE, ConceptScore, XnnParams, faithfulness, significant, train_xnns
from pipeline.models.images import load_uint8, normalise
from pipeline.models.train import features_and_logits
from pipeline.render import concepts as draw
from pipeline.render.heatmap import overlay

HEATMAP_METHOD = "I-GOS on the concept's activation z_j, relative to z_j on the image (combined network)"


def count(w: Work, method: Method) -> int:
    return 0  # XNN reports its own phases (training, concept maps, galleries)


def run(w: Work, method: Method, params: XnnParams, bar: Bar) -> None:
    heatmap = w.nested(method, "heatmap")
    assert isinstance(heatmap, IgosParams)
    stage = XnnStage(w, method.name, params, heatmap)
    progress = bar.phase("xnn: training concepts")
    if progress:
        progress(0, len(w.lm.class_ids))
    xnns, meta, train_x = stage.train()
    targets = [w.targets(r, method) for r in w.recs]
    stage.explain_images(xnns, w.recs, w.uint8, targets, bar.phase("xnn: concept maps"))
    stage.report(xnns, meta, train_x, bar.phase("xnn: concept galleries"))


class XnnStage:
    def __init__(self, w: Work, name: str, params: XnnParams, heatmap: IgosParams) -> None:
        self.w, self.name, self.run, self.ds, self.model = w, name, w.run, w.ds, w.model
        self.class_ids, self.transform, self.device = w.lm.class_ids, w.transform, w.device
        self.p, self.heatmap, self.batch = params, heatmap, w.cfg.batch
        self.index = w.index
        self.dir = w.run.root / "xnn"

    # -- 1. features and training -------------------------------------------------------------
    def train(self) -> tuple[list[SRAE], list[dict[str, Any]], torch.Tensor]:
        """One SRAE per class, from cache when the features and parameters are unchanged (frozen)."""
        models, meta, x = self._train()
        for m in models:
            m.requires_grad_(False)
        return models, meta, x

    def _train(self) -> tuple[list[SRAE], list[dict[str, Any]], torch.Tensor]:
        _, x, logits = split_features(self.w, "train")
        key = hashlib.sha256(
            x.numpy().tobytes() + logits.numpy().tobytes() + json.dumps(self.p.training_dict(), sort_keys=True).encode()
        ).hexdigest()[:16]
        path = self.dir / f"xnn-{key}.pt"
        if path.is_file():
            saved = torch.load(path, weights_only=True)
            models = []
            for state in saved["states"]:
                m = SRAE(x.shape[1], self.p.k, self.p.dropout)
                m.load_state_dict(state)
                models.append(m.eval())
            return models, saved["meta"], x
        trained = train_xnns(x, logits, self.p)
        models = [t.model.eval() for t in trained]
        meta = [
            {
                "rounds": t.rounds,
                "accepted": t.accepted,
                "mean_contribution": t.mean_contribution,
                "alpha_rec": t.alpha_rec,
                "alpha_pt": t.alpha_pt,
            }
            for t in trained
        ]
        buf = io.BytesIO()
        torch.save({"states": [m.state_dict() for m in models], "meta": meta}, buf)
        atomic_write_bytes(path, buf.getvalue())
        return models, meta, x

    # -- 3. heatmaps of concepts ----------------------------------------------------------------
    def concept_maps(
        self,
        xnns: list[SRAE],
        uint8: torch.Tensor,
        jobs: list[tuple[int, int, int]],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[np.ndarray]:
        """I-GOS saliency (r×r) for (row of uint8, class index, unit) jobs, in batches."""
        out: list[np.ndarray] = []
        for xn in xnns:
            xn.to(self.device)
        for start in range(0, len(jobs), self.batch):
            chunk = jobs[start : start + self.batch]
            pics = uint8[torch.tensor([r for r, _, _ in chunk])].to(self.device)
            x = normalise(pics, self.transform)
            cls = torch.tensor([c for _, c, _ in chunk])
            unit = torch.tensor([u for _, _, u in chunk])
            with torch.no_grad():
                feats = self.model.features(x)
                ref = torch.stack([xnns[c].encode(feats[i : i + 1])[0, u] for i, (_, c, u) in enumerate(chunk)])
            score = ConceptScore(self.model, xnns, cls, unit, ref)
            masks = igos(score, x, blurred_baseline(pics, self.transform), self.heatmap)
            out += list((1 - masks).squeeze(1).cpu().numpy())
            if progress:
                progress(len(out), len(jobs))
        return out

    def write_map(self, rel: str, image: np.ndarray, sal: np.ndarray) -> None:
        self.run.write_npy(f"{rel}.npy", sal)
        self.run.write_png(f"{rel}.png", overlay(image, sal))

    # -- per image ------------------------------------------------------------------------------
    def explain_images(
        self,
        xnns: list[SRAE],
        recs: list[ImageRecord],
        uint8: torch.Tensor,
        targets: list[list[tuple[str, int]]],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        with torch.no_grad():
            feats, logits = features_and_logits(self.model, uint8, self.transform, self.device)
        plans = []
        jobs: list[tuple[int, int, int]] = []
        for row, (rec, tlist) in enumerate(zip(recs, targets, strict=True)):
            for target, cls in tlist:
                if self.run.record(self.name, rec.id, target).is_file():
                    continue
                c = self.index[cls]
                with torch.no_grad():
                    z, rebuilt, _ = xnns[c](feats[row : row + 1])
                    contrib = xnns[c].contributions(z)[0]
                sig = significant(contrib, self.p.significant)
                plans.append((row, rec, target, cls, c, z[0], float(rebuilt[0]), contrib, sig, len(jobs)))
                jobs += [(row, c, j) for j in sig]
        t0 = time.perf_counter()
        maps = self.concept_maps(xnns, uint8, jobs, progress)
        seconds = (time.perf_counter() - t0) / max(1, len(plans))
        for row, rec, target, cls, c, z, rebuilt, contrib, sig, first in plans:
            image = uint8[row].permute(1, 2, 0).numpy()
            stem = self.run.stem(self.name, rec.id, target)
            items, significant_maps = [], []
            for k, j in enumerate(sig):
                rel = f"{stem}/concept-{j + 1}"
                self.write_map(rel, image, maps[first + k])
                significant_maps.append(
                    {
                        "concept": j + 1,
                        "contribution": round(float(contrib[j]), 5),
                        "activation": round(float(z[j]), 5),
                        "raw": f"{rel}.npy",
                        "overlay": f"{rel}.png",
                    }
                )
                items.append((j + 1, Image.open(self.run.root / f"{rel}.png"), float(contrib[j])))
            for m, same in zip(significant_maps, draw.same_spots(maps[first : first + len(sig)]), strict=True):
                m["same_spot_as"] = significant_maps[same]["concept"] if same is not None else None
            text = draw.summary([j + 1 for j in sig])
            self.run.write_png(f"{stem}/card.png", draw.card(Image.fromarray(image), items, text))
            self.run.write_json(
                self.run.record(self.name, rec.id, target),
                {
                    "kind": "concepts",
                    "method": self.name,
                    "target": target,
                    "target_class": cls,
                    "logit": round(float(logits[row, c]), 5),
                    "rebuilt": round(rebuilt, 5),
                    "contributions": [round(float(v), 5) for v in contrib],
                    "significant": significant_maps,
                    "card": f"{stem}/card.png",
                    "summary": text,
                    "seconds": round(seconds, 4),
                },
            )

    # -- 2 and 4. report, galleries, part table -------------------------------------------------
    def report(
        self,
        xnns: list[SRAE],
        meta: list[dict[str, Any]],
        train_x: torch.Tensor,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        path = self.dir / "report.json"
        if path.is_file():
            saved: dict[str, Any] = json.loads(path.read_text())
            if saved.get("params") == self.p.as_dict() and saved.get("heatmap_params") == self.heatmap.as_dict():
                return saved
        test_recs, test_x, test_logits = split_features(self.w, "test")
        labels = torch.tensor([self.index[r.class_id] for r in test_recs])
        f = faithfulness(xnns, test_x, test_logits, labels) if len(test_recs) else None
        train_recs = self.ds.split("train")
        with torch.no_grad():
            z_train = [m.encode(train_x) for m in xnns]
        picks: list[tuple[int, int, int]] = []  # (train row, class, unit)
        for c in range(len(xnns)):
            for j in range(self.p.k):
                # Only concepts that on average speak for their class get a gallery: they are the
                # ones a participant is shown; the rest would cost heatmaps nobody sees.
                if meta[c]["mean_contribution"][j] <= 0:
                    continue
                top = torch.argsort(z_train[c][:, j], descending=True, stable=True)[: self.p.gallery]
                picks += [(int(r), c, j) for r in top if z_train[c][r, j] > 0]
        rows = sorted({r for r, _, _ in picks})
        pos = {r: i for i, r in enumerate(rows)}
        uint8 = load_uint8([self.ds.image_path(train_recs[r]) for r in rows], self.transform)
        maps = self.concept_maps(xnns, uint8, [(pos[r], c, j) for r, c, j in picks], progress)
        classes = []
        for c, cid in enumerate(self.class_ids):
            concepts = []
            for j in range(self.p.k):
                gallery, strips, shares = [], [], []
                for (r, cc, jj), sal in zip(picks, maps, strict=True):
                    if (cc, jj) != (c, j):
                        continue
                    rec = train_recs[r]
                    image = uint8[pos[r]].permute(1, 2, 0).numpy()
                    rel = f"xnn/gallery/{cid}/concept-{j + 1}/{rec.id}"
                    self.write_map(rel, image, sal)
                    if not (self.run.root / self.run.image(rec.id)).is_file():
                        self.run.write_png(self.run.image(rec.id), Image.fromarray(image))
                    gallery.append(
                        {
                            "image_id": rec.id,
                            "image": self.run.image(rec.id),
                            "overlay": f"{rel}.png",
                            "activation": round(float(z_train[c][r, j]), 5),
                        }
                    )
                    strips.append(Image.open(self.run.root / f"{rel}.png"))
                    shares.append(
                        parts.part_shares(self.ds, rec, parts.at_image_size(torch.from_numpy(sal), image.shape[0]))
                    )
                if strips:
                    self.run.write_png(
                        f"xnn/gallery/{cid}/concept-{j + 1}.png",
                        draw.gallery_strip(strips, f"Concept {j + 1}: where it is strongest"),
                    )
                part_shares = _mean_shares([s for s in shares if s])
                concepts.append(
                    {
                        "concept": j + 1,
                        "weight": round(float(xnns[c].out.weight[0, j]), 5),
                        "mean_contribution": round(meta[c]["mean_contribution"][j], 5),
                        "suggested_name": suggest_name(part_shares),
                        "part_shares": part_shares,
                        "gallery": gallery,
                    }
                )
            classes.append(
                {
                    "class_id": cid,
                    "rmse": round(f.rmse[c], 5) if f else 0.0,
                    "logit_range": round(f.logit_range[c], 5) if f else 0.0,
                    "accepted": meta[c]["accepted"],
                    "rounds": meta[c]["rounds"],
                    "concepts": concepts,
                }
            )
        doc = {
            "k": self.p.k,
            "layer": "penultimate",
            "feature_dim": int(train_x.shape[1]),
            "accuracy_xnn": round(f.accuracy_xnn, 5) if f else 0.0,
            "accuracy_classifier": round(f.accuracy_classifier, 5) if f else 0.0,
            "agreement": round(f.agreement, 5) if f else 0.0,
            "heatmap_method": HEATMAP_METHOD,
            "params": self.p.as_dict(),
            "heatmap_params": self.heatmap.as_dict(),
            "classes": classes,
        }
        self.run.write_json(path, doc)
        return doc


def _mean_shares(shares: list[dict[str, float]]) -> dict[str, float]:
    if not shares:
        return {}
    return {k: round(float(np.mean([s[k] for s in shares])), 4) for k in shares[0]}


def suggest_name(shares: dict[str, float]) -> str:
    """The bird part holding most of a concept's heatmap mass; 'background' if most lies off the bird."""
    if not shares:
        return ""
    if shares.get("background", 0.0) > 0.5:
        return "background"
    parts = {k: v for k, v in shares.items() if k != "background"}
    return max(parts, key=parts.__getitem__) if parts else ""
