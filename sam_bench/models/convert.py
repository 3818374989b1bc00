"""Weight converters between implementations of the same weights, and ``transfer`` between built adapters.

A converter is a pure function on a state dict: {name: tensor} in, {name: tensor} out, the same
tensors under the other implementation's names (constant buffers dropped or restored). Each
implementation is named by its top-level package and module class (``implementation``):

==============================  ==============================  ===========================
from                            to                              converter
==============================  ==============================  ===========================
``segment_anything.Sam``        ``transformers.SamModel``       ``sam_to_hf``
``transformers.SamModel``       ``segment_anything.Sam``        ``hf_to_sam``
``segment_anything_hq.Sam``     ``transformers.SamHQModel``     ``sam_to_hf`` (HQ parts too)
``transformers.SamHQModel``     ``segment_anything_hq.Sam``     ``hf_to_sam``
``sam2.SAM2Base``               ``transformers.Sam2Model``      ``convert_sam2.sam2_to_hf``
the same on both sides          (a copy)                        ``copy``
==============================  ==============================  ===========================

The SAM renames are written once as (official, transformers) pairs and read both ways, so
``hf_to_sam(sam_to_hf(sd))`` gives back every tensor of ``sd`` under its own name (tested).
``transfer(a, b)`` loads adapter ``a``'s weights into adapter ``b`` (``sam-bench parity``).
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any, Callable

from sam_bench.errors import ConfigError, NotBuilt

if TYPE_CHECKING:
    import torch

StateDict = dict  # {name: torch.Tensor}

# SamPredictor's pixel normalisation, buffers of the official Sam; transformers keeps them in the image processor
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

# (official, transformers) name prefixes, the longest match wins; an nn.Sequential's index -> a named layer
PREFIXES: tuple[tuple[str, str], ...] = (
    ("image_encoder.blocks.", "vision_encoder.layers."),
    ("image_encoder.neck.0.", "vision_encoder.neck.conv1."),
    ("image_encoder.neck.1.", "vision_encoder.neck.layer_norm1."),
    ("image_encoder.neck.2.", "vision_encoder.neck.conv2."),
    ("image_encoder.neck.3.", "vision_encoder.neck.layer_norm2."),
    ("image_encoder.", "vision_encoder."),
    ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "prompt_encoder.shared_embedding.positional_embedding"),
    ("prompt_encoder.point_embeddings.", "prompt_encoder.point_embed."),
    ("prompt_encoder.mask_downscaling.0.", "prompt_encoder.mask_embed.conv1."),
    ("prompt_encoder.mask_downscaling.1.", "prompt_encoder.mask_embed.layer_norm1."),
    ("prompt_encoder.mask_downscaling.3.", "prompt_encoder.mask_embed.conv2."),
    ("prompt_encoder.mask_downscaling.4.", "prompt_encoder.mask_embed.layer_norm2."),
    ("prompt_encoder.mask_downscaling.6.", "prompt_encoder.mask_embed.conv3."),
    ("mask_decoder.output_upscaling.0.", "mask_decoder.upscale_conv1."),
    ("mask_decoder.output_upscaling.1.", "mask_decoder.upscale_layer_norm."),
    ("mask_decoder.output_upscaling.3.", "mask_decoder.upscale_conv2."),
    # HQ-SAM's decoder additions
    ("mask_decoder.hf_token.", "mask_decoder.hq_token."),
    ("mask_decoder.hf_mlp.", "mask_decoder.hq_mask_mlp."),
    ("mask_decoder.compress_vit_feat.0.", "mask_decoder.compress_vit_conv1."),
    ("mask_decoder.compress_vit_feat.1.", "mask_decoder.compress_vit_norm."),
    ("mask_decoder.compress_vit_feat.3.", "mask_decoder.compress_vit_conv2."),
    ("mask_decoder.embedding_encoder.0.", "mask_decoder.encoder_conv1."),
    ("mask_decoder.embedding_encoder.1.", "mask_decoder.encoder_norm."),
    ("mask_decoder.embedding_encoder.3.", "mask_decoder.encoder_conv2."),
    ("mask_decoder.embedding_maskfeature.0.", "mask_decoder.mask_conv1."),
    ("mask_decoder.embedding_maskfeature.1.", "mask_decoder.mask_norm."),
    ("mask_decoder.embedding_maskfeature.3.", "mask_decoder.mask_conv2."),
)
# (official, transformers) dotted fragments inside the ViT blocks and the two-way transformer (official names)
FRAGMENTS: tuple[tuple[str, str], ...] = (
    ("patch_embed.proj", "patch_embed.projection"), ("norm1", "layer_norm1"), ("norm2", "layer_norm2"),
    ("norm3", "layer_norm3"), ("norm4", "layer_norm4"), ("norm_final_attn", "layer_norm_final_attn"))
FRAGMENT_SCOPE = ("image_encoder.blocks.", "image_encoder.patch_embed.", "mask_decoder.transformer.")
# the decoder MLPs: official layers.0..D-1; transformers proj_in, layers.0..D-3, proj_out
MLP = re.compile(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head|hf_mlp))\.(.+)$")
OFFICIAL_PART = re.compile(r"layers\.(\d+)\.(.+)$")
HF_PART = re.compile(r"(proj_in|proj_out|layers\.(\d+))\.(.+)$")
HF_SHARED = "shared_image_embedding.positional_embedding"  # transformers' second copy of the prompt encoder's
HF_PROMPT_PE = "prompt_encoder.shared_embedding.positional_embedding"


def _prefix(key: str, pairs: tuple[tuple[str, str], ...], forward: bool) -> str:
    best = max(((a, b) if forward else (b, a) for a, b in pairs if key.startswith(a if forward else b)),
               key=lambda p: len(p[0]), default=None)
    return key if best is None else best[1] + key[len(best[0]):]


def _fragments(key: str, forward: bool) -> str:
    if not key.startswith(FRAGMENT_SCOPE):
        return key
    parts = f".{key}."
    for a, b in FRAGMENTS:
        old, new = (a, b) if forward else (b, a)
        parts = parts.replace(f".{old}.", f".{new}.")
    return parts[1:-1]


def _mlp_depths(keys, forward: bool) -> dict[str, int]:
    """{MLP (official name): its number of linear layers}, read from official (``forward``) or transformers keys."""
    depth: dict[str, int] = {}
    for key in keys:
        m = MLP.match(key)
        part = m and (OFFICIAL_PART if forward else HF_PART).match(m.group(2))
        if part:
            n = int(part.group(1)) + 1 if forward else int(part.group(2)) + 3 if part.group(2) else 2
            depth[m.group(1)] = max(depth.get(m.group(1), 0), n)
    return depth


def _mlp(key: str, depth: dict[str, int], forward: bool) -> str:
    m = MLP.match(key)
    part = m and (OFFICIAL_PART if forward else HF_PART).match(m.group(2))
    if not part:
        return key
    head, last = m.group(1), depth[m.group(1)] - 1
    if forward:
        i, tail = int(part.group(1)), part.group(2)
        return f"{head}.{'proj_in' if i == 0 else 'proj_out' if i == last else f'layers.{i - 1}'}.{tail}"
    name, hidden, tail = part.groups()
    index = 0 if name == "proj_in" else last if name == "proj_out" else int(hidden) + 1
    return f"{head}.layers.{index}.{tail}"


def sam_to_hf(state: StateDict) -> StateDict:
    """An official ``segment_anything`` (or ``segment_anything_hq``) ``Sam`` state dict in the names of
    transformers' ``SamModel`` (``SamHQModel``). Pixel mean/std buffers, which some checkpoint files
    hold, are dropped (transformers normalises in its image processor with SAM's values; others are refused)."""
    import torch

    for key, want in (("pixel_mean", PIXEL_MEAN), ("pixel_std", PIXEL_STD)):
        if key in state and not torch.allclose(state[key].flatten().float().cpu(), torch.tensor(want)):
            raise ConfigError(f"{key} {state[key].flatten().tolist()} differs from SAM's {list(want)}: "
                              f"transformers' SamImageProcessor would normalise the image differently")
    depth = _mlp_depths(state, forward=True)
    out = {}
    for key, value in state.items():
        if key in ("pixel_mean", "pixel_std"):
            continue
        out[_prefix(_fragments(_mlp(key, depth, True), True), PREFIXES, True)] = value
    if HF_PROMPT_PE in out:
        out[HF_SHARED] = out[HF_PROMPT_PE]
    return out


def hf_to_sam(state: StateDict) -> StateDict:
    """A transformers ``SamModel`` / ``SamHQModel`` state dict in the official ``Sam`` names: the inverse
    of ``sam_to_hf`` (the shared positional embedding must equal the prompt encoder's, the official
    model's only copy; the pixel mean/std are not in the official state dict, which builds them)."""
    import torch

    state = dict(state)
    shared = state.pop(HF_SHARED, None)
    own = state.get(HF_PROMPT_PE)
    if shared is not None and own is not None and shared is not own and not torch.equal(shared, own):
        raise ConfigError(f"{HF_SHARED} differs from {HF_PROMPT_PE}; the official Sam holds one positional "
                          f"embedding, so this state dict cannot be converted without loss")
    renamed = {_fragments(_prefix(k, PREFIXES, False), False): v for k, v in state.items()}
    depth = _mlp_depths(renamed, forward=False)
    return {_mlp(k, depth, False): v for k, v in renamed.items()}


def copy(state: StateDict) -> StateDict:
    """Same implementation on both sides: the state dict as it is."""
    return dict(state)


# (from, to) -> converter, or "module:function" imported when first asked for
CONVERTERS: dict[tuple[str, str], Callable[[StateDict], StateDict] | str] = {
    ("segment_anything.Sam", "transformers.SamModel"): sam_to_hf,
    ("transformers.SamModel", "segment_anything.Sam"): hf_to_sam,
    ("segment_anything_hq.Sam", "transformers.SamHQModel"): sam_to_hf,
    ("transformers.SamHQModel", "segment_anything_hq.Sam"): hf_to_sam,
    ("sam2.SAM2Base", "transformers.Sam2Model"): "sam_bench.models.convert_sam2:sam2_to_hf",
}


def implementation(module: Any) -> str:
    """``package.Class`` of a torch module: ``segment_anything.Sam``, ``transformers.SamModel``."""
    cls = type(module)
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def converter(source: str, target: str) -> Callable[[StateDict], StateDict]:
    """The converter from implementation ``source`` to ``target`` (``copy`` when they are the same)."""
    if source == target:
        return copy
    found = CONVERTERS.get((source, target))
    if found is None:
        known = ", ".join(f"{a} -> {b}" for a, b in CONVERTERS)
        raise ConfigError(f"no weight converter from {source} to {target}; known: {known} (and any "
                          f"implementation to itself)")
    if isinstance(found, str):
        module, _, name = found.partition(":")
        try:
            found = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise NotBuilt(f"the {source} -> {target} converter {module}:{name} is not available ({exc})") from exc
    return found


def torch_module(model: Any) -> torch.nn.Module:
    """The one torch module an adapter holds, directly (``.sam``, ``.model``) or as a predictor's ``.model``."""
    import torch

    found: list[torch.nn.Module] = []
    for value in vars(model).values():
        module = value if isinstance(value, torch.nn.Module) else getattr(value, "model", None)
        if isinstance(module, torch.nn.Module) and not any(module is f for f in found):
            found.append(module)
    if len(found) != 1:
        raise ConfigError(f"model {model.info.name!r}: found {len(found)} torch modules in the adapter, want one "
                          f"to read or load weights")
    return found[0]


def transfer(source: Any, target: Any) -> str:
    """Load the weights of built adapter ``source`` into built adapter ``target`` (converted between
    their implementations; each tensor keeps ``target``'s dtype and device). Returns the converter's name."""
    src, dst = torch_module(source), torch_module(target)
    convert = converter(implementation(src), implementation(dst))
    state = convert(src.state_dict())
    try:
        dst.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())
        raise ConfigError(f"{source.info.name} -> {target.info.name}: the converted weights do not fit "
                          f"({text[:400]}{'...' if len(text) > 400 else ''}); do both name the same size "
                          f"(variant)?") from None
    return convert.__name__
