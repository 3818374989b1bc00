"""Model cards: what `sam-bench models list` and docs/models.md say of each registered model
without building it (task kinds, pip extra, package, family, parameter counts per variant)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelCard:
    """What `models list` and docs/models.md say of a registered model without building it:
    task kinds, the pip extra and package that provide it, its family, and parameter counts per
    variant (checked against the built architecture by tests/test_model_cards.py)."""

    kinds: str
    extra: str | None = None
    family: str = "-"
    package: str = "-"
    params: dict = field(default_factory=dict)  # variant (or "") -> parameter count


MODEL_CARDS: dict[str, ModelCard] = {
    "sam_vit_b": ModelCard("promptable", None, "SAM", "segment_anything", {"": 93_735_472}),
    "sam_vit_l": ModelCard("promptable", None, "SAM", "segment_anything", {"": 312_342_832}),
    "sam_vit_h": ModelCard("promptable", None, "SAM", "segment_anything", {"": 641_090_608}),
    "hf-sam": ModelCard("promptable", "hf", "SAM", "transformers",
                        {"vit_b": 93_735_728, "vit_l": 312_343_088, "vit_h": 641_090_864}),
    "sam2": ModelCard("promptable", "sam2", "SAM 2.1", "sam2",
                      {"t": 38_962_498, "s": 46_060_354, "b+": 80_850_178, "l": 224_446_642}),
    "hq-sam": ModelCard("promptable", "hq", "HQ-SAM", "segment_anything_hq",
                        {"vit_tiny": 10_578_604, "vit_b": 94_806_576, "vit_l": 313_676_080, "vit_h": 642_686_000}),
    "mobile-sam": ModelCard("promptable", "mobile", "MobileSAM", "mobile_sam", {"": 10_130_092}),
    "tinysam": ModelCard("promptable", "mobile", "TinySAM", "mobile_sam", {"": 10_130_092}),
    "efficientvit-sam": ModelCard("promptable", "efficientvit", "EfficientViT-SAM", "efficientsam", {
        "l0": 34_792_784, "l1": 47_650_128, "l2": 61_328_592, "xl0": 116_957_904, "xl1": 203_346_128}),
    "grabcut": ModelCard("promptable", None, "classical", "opencv"),
    "sobel": ModelCard("edges", None, "classical", "opencv"),
    "canny": ModelCard("edges", None, "classical", "opencv"),
    "felzenszwalb": ModelCard("edges, proposals", None, "classical", "scikit-image"),
    "edges-from": ModelCard("edges", None, "precomputed", "-"),
    "slic-proposals": ModelCard("proposals", None, "classical", "scikit-image"),
    "sam3": ModelCard("text", "hf", "SAM 3", "transformers"),
    "hf-sam2": ModelCard("promptable", "hf", "SAM 2.1", "transformers",  # image model: no memory modules
                         {"t": 31_440_721, "s": 38_538_577, "b+": 73_328_401, "l": 216_924_865}),
    "edgetam": ModelCard("promptable", "hf", "EdgeTAM", "transformers", {"": 9_120_641}),
    "ritm": ModelCard("promptable", "ritm", "RITM", "ritm_annotation", {"h32": 30_951_363, "h18": 10_032_019,
                                                                       "h18s": 4_220_047, "sbd_h18": 10_032_019}),
}


def params_text(card: ModelCard) -> str:
    """``93.7M`` or ``t 38.9M, s 46.0M`` for `models list`."""
    if not card.params:
        return "-"
    return ", ".join(f"{v + ' ' if v else ''}{n / 1e6:.1f}M" for v, n in card.params.items())
