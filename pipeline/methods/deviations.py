"""Each method's reference code and where ours differs from it, with the reason.

The manifest copies these into every run's `methods` entry (app/assets/manifest.py `MethodInfo`)
and docs/explanations.md shows them, so a reader of any run knows what was reproduced and what
was chosen. `switch` names the parameter value that follows the reference code, where there is one.
Commits are the ones read (see the project's reference notes, seed-algorithms §0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Deviation:
    what: str  # ours, against the reference code
    why: str
    switch: str | None = None  # the parameter setting that follows the reference code

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


IGOS_CODE = "zhongangqi/IGOS@541e4403 IGOS_generate_video.py Integrated_Mask"
IGOSPP_CODE = "khorrams/IGOS_pp@b0820a2f methods.py iGOS_pp, methods_helper.py"
_SHARED_NOISE = Deviation(
    "the path noise (σ 0.2) of integration point s is one seeded draw shared by every image of a batch; the code "
    "draws fresh noise per image and call (cv2.randn / torch.randn_like)",
    "a batched call gives the same masks as one image at a time, and a seed gives the same masks every run",
)
_ITERATIONS = Deviation(
    "15 iterations × 20 integration points; the code's main.py crosses its two flags and runs 20 × 15",
    "the settings the paper and the README state",
)

REFERENCE_CODE: dict[str, str] = {
    "igos": IGOS_CODE,
    "igospp": IGOSPP_CODE,
    "igospp-authors": IGOSPP_CODE,
    "gradcam": "pytorch/captum LayerGradCam (used as is)",
    "ig-blur": "pytorch/captum IntegratedGradients (used as is)",
    "ig-black": "pytorch/captum IntegratedGradients (used as is)",
    "occlusion": "pytorch/captum Occlusion (used as is)",
    "rise": "eclique/RISE explanations.py (no maintained library; written here)",
    "sag": "viv92/structured-attention-graphs@f076a831 main_generate_sag.py, patch_deletion_tree.py",
    "xnn": "viv92/xAI-VisualConcepts@6fdd3e67 (XNN on CUB)",
    "examples": "none (a plain nearest-neighbour baseline)",
}

DEVIATIONS: dict[str, list[Deviation]] = {
    "igos": [
        _SHARED_NOISE,
        Deviation(
            "the integrated score is divided by S; the code divides by the literal 20.0",
            "the same at the default S = 20, and right for any other S",
        ),
    ],
    "igospp": [
        Deviation(
            "the line search scores the noise-free end points, and the product mask is formed on the grid and "
            "then upsampled; the code scores the noisy integrated sums and multiplies the upsampled masks",
            "deterministic, 4·S fewer forwards per trial (6.6 against 18.0 s per image on 2 CPU cores), and the same "
            "deletion and insertion AUCs within 0.01 on 32 benchmark images (docs/benchmarks.md)",
            "line_search=integrated (method igospp-authors)",
        ),
        _SHARED_NOISE,
        _ITERATIONS,
    ],
    "igospp-authors": [
        Deviation(
            "the line search's fresh noise per trial is drawn from a generator seeded by (seed, iteration, trial) "
            "and shared by the images at that trial",
            "runs repeat, and a batch gives the masks of one image at a time",
        ),
        _SHARED_NOISE,
        _ITERATIONS,
    ],
    "gradcam": [
        Deviation("ReLU on the map (Captum's default has none)", "Selvaraju et al. apply it", "relu=False"),
    ],
    "ig-blur": [
        Deviation(
            "the explained score is the softmax probability and the baseline the I-GOS blur",
            "the quantity I-GOS explains, so the two are comparable",
        )
    ],
    "ig-black": [Deviation("the explained score is the softmax probability", "the quantity I-GOS explains")],
    "occlusion": [
        Deviation("occluded windows show the blurred image, not zeros", "the same deletion as I-GOS and the metric")
    ],
    "rise": [],
    "sag": [
        Deviation(
            "the baseline is the I-GOS blur; the code used black", "the same deletion as the heatmaps", "baseline=black"
        ),
        Deviation("the beam holds exactly b states; the code kept b + 1", "the paper's b"),
        Deviation(
            "every sufficient successor scored in a step becomes a root; the code stopped looking once the beam "
            "was full",
            "they were scored anyway, and dropping them lost roots",
        ),
        Deviation("identical nodes are merged into a DAG; the code drew a forest", "the paper describes a DAG"),
        Deviation(
            "the search also stops after 4 steps in a row without a new root; the code has no such stop",
            "a 4.6× cheaper search (1,524 against 7,007 masked images per image) that shows the same roots on 30 of "
            "32 benchmark images (docs/benchmarks.md)",
            "patience=None",
        ),
        Deviation(
            "a node's children remove its most salient patches first; the code removes the first three by patch index",
            "a shown root's first edges then lose 0.46 of the confidence on average, against 0.37 by index, and 47 % "
            "of them at least half, against 33 % (docs/benchmarks.md)",
            "children=index",
        ),
    ],
    "xnn": [
        Deviation(
            "60 epochs of joint training after pre-training; the code trained 1 epoch",
            "a better reconstruction of the logits in the benchmark",
        )
    ],
    "examples": [],
}
