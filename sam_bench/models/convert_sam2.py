"""Official SAM 2 / 2.1 weights (``sam2`` package, ``SAM2Base``) <-> ``transformers`` ``Sam2Model``.

``sam2_to_hf(state_dict)`` renames the keys of a ``SAM2Base`` state dict (``sam2.1_hiera_*.pt``
under ``"model"``, or ``SAM2ImagePredictor.model.state_dict()``) to the ``Sam2Model`` layout;
``hf_to_sam2`` goes back. Tensors are never changed, only renamed, except two layout steps:
the four point embeddings (``point_embeddings.{0..3}``, each (1, 256)) are one (4, 256) table
in transformers, and transformers keeps a second copy of the prompt encoder's random-Fourier
matrix (``shared_image_embedding``; ``hf_to_sam2`` refuses a model whose two copies differ, as
a freshly initialised one's do). ``Sam2Model`` is the image model, so the video-only
tensors (memory attention / encoder, object pointers, ``VIDEO_ONLY``) are left out; an image
predictor never reads them. A key that is neither is an error, so a wrong file is not half-loaded.

Each rule rewrites a key prefix; ``{n}`` stands for a block index and ``{a}`` for an attention
name. The rules are written once and read both ways, so the two functions are exact inverses.
"""

from __future__ import annotations

import re

from sam_bench.errors import CheckpointError

_MLP3 = [("layers.0.", "proj_in."), ("layers.1.", "layers.0."), ("layers.2.", "proj_out.")]  # 3-layer heads
_ENC, _HFENC = "image_encoder.trunk.", "vision_encoder.backbone."
_DEC, _HFDEC = "sam_mask_decoder.", "mask_decoder."
_PE, _HFPE = "sam_prompt_encoder.", "prompt_encoder."

RULES: list[tuple[str, str]] = [  # (official prefix, transformers prefix), most specific first
    (f"{_ENC}patch_embed.proj.", f"{_HFENC}patch_embed.projection."),
    (f"{_ENC}blocks.{{n}}.norm1.", f"{_HFENC}blocks.{{n}}.layer_norm1."),
    (f"{_ENC}blocks.{{n}}.norm2.", f"{_HFENC}blocks.{{n}}.layer_norm2."),
    (f"{_ENC}blocks.{{n}}.mlp.layers.0.", f"{_HFENC}blocks.{{n}}.mlp.proj_in."),
    (f"{_ENC}blocks.{{n}}.mlp.layers.1.", f"{_HFENC}blocks.{{n}}.mlp.proj_out."),
    (_ENC, _HFENC),
    ("image_encoder.neck.convs.{n}.conv.", "vision_encoder.neck.convs.{n}."),
    (f"{_PE}pe_layer.positional_encoding_gaussian_matrix", f"{_HFPE}shared_embedding.positional_embedding"),
    *[(f"{_PE}mask_downscaling.{i}.", f"{_HFPE}mask_embed.{name}.") for i, name in
      [(0, "conv1"), (1, "layer_norm1"), (3, "conv2"), (4, "layer_norm2"), (6, "conv3")]],
    (_PE, _HFPE),
    *[(f"{_DEC}output_upscaling.{i}.", f"{_HFDEC}{name}.") for i, name in
      [(0, "upscale_conv1"), (1, "upscale_layer_norm"), (3, "upscale_conv2")]],
    *[(f"{_DEC}{head}.{a}", f"{_HFDEC}{head}.{b}") for head in
      ("iou_prediction_head", "output_hypernetworks_mlps.{n}", "pred_obj_score_head") for a, b in _MLP3],
    (f"{_DEC}transformer.layers.{{n}}.norm{{m}}.", f"{_HFDEC}transformer.layers.{{n}}.layer_norm{{m}}."),
    (f"{_DEC}transformer.layers.{{n}}.mlp.layers.0.", f"{_HFDEC}transformer.layers.{{n}}.mlp.proj_in."),
    (f"{_DEC}transformer.layers.{{n}}.mlp.layers.1.", f"{_HFDEC}transformer.layers.{{n}}.mlp.proj_out."),
    (f"{_DEC}transformer.layers.{{n}}.{{a}}.out_proj.", f"{_HFDEC}transformer.layers.{{n}}.{{a}}.o_proj."),
    *[(f"{_DEC}transformer.final_attn_token_to_image.{a}", f"{_HFDEC}transformer.final_attn_token_to_image.{b}")
      for a, b in [("out_proj.", "o_proj.")]],
    (f"{_DEC}transformer.norm_final_attn.", f"{_HFDEC}transformer.layer_norm_final_attn."),
    (_DEC, _HFDEC),
    ("no_mem_embed", "no_memory_embedding"),
]

# SAM2Base tensors that only the video predictor reads (memory bank, object pointers)
VIDEO_ONLY = ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr",
              "no_obj_embed_spatial", "obj_ptr_proj.", "obj_ptr_tpos_proj.", "mask_downsample.")
POINTS, HF_POINTS = f"{_PE}point_embeddings.{{}}.weight", f"{_HFPE}point_embed.weight"
SHARED_PE = "shared_image_embedding.positional_embedding"
_SLOT = {"n": r"(?P<n>\d+)", "m": r"(?P<m>\d+)", "a": r"(?P<a>[a-z_]+)"}


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w)\}", template)
    return re.compile("".join(_SLOT[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


_FORWARD = [(_compile(a), b) for a, b in RULES]
_BACKWARD = [(_compile(b), a) for a, b in RULES]


def _rename(key: str, rules) -> str | None:
    for pattern, target in rules:
        hit = pattern.match(key)
        if hit:
            return target.format(**hit.groupdict()) + key[hit.end():]
    return None


def sam2_to_hf(state_dict: dict) -> dict:
    """An official ``SAM2Base`` state dict -> a ``transformers`` ``Sam2Model`` one (same tensors)."""
    out, unknown = {}, []
    points = [state_dict.get(POINTS.format(i)) for i in range(4)]
    for key, value in state_dict.items():
        if key.startswith(VIDEO_ONLY) or key.startswith(f"{_PE}point_embeddings."):
            continue
        new = _rename(key, _FORWARD)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown or any(p is None for p in points):
        raise CheckpointError(f"not an official SAM 2 state dict: unknown keys {unknown[:5]}, "
                              f"point embeddings present: {[p is not None for p in points]}")
    import torch

    out[HF_POINTS] = torch.cat(points, dim=0)
    out[SHARED_PE] = out[f"{_HFPE}shared_embedding.positional_embedding"]
    return out


def hf_to_sam2(state_dict: dict) -> dict:
    """A ``transformers`` ``Sam2Model`` state dict -> the official ``SAM2Base`` names (image tensors only)."""
    out, unknown = {}, []
    for key, value in state_dict.items():
        if key in (HF_POINTS, SHARED_PE):
            continue
        new = _rename(key, _BACKWARD)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown or HF_POINTS not in state_dict:
        raise CheckpointError(f"not a transformers Sam2Model state dict: unknown keys {unknown[:5]}, "
                              f"{HF_POINTS} present: {HF_POINTS in state_dict}")
    pe = state_dict[f"{_HFPE}shared_embedding.positional_embedding"]
    if SHARED_PE in state_dict and not bool((state_dict[SHARED_PE] == pe).all()):
        raise CheckpointError(f"{SHARED_PE} differs from {_HFPE}shared_embedding.positional_embedding; SAM 2 has one "
                              f"matrix for both, so this model has no official equivalent")
    for i, row in enumerate(state_dict[HF_POINTS].split(1, dim=0)):
        out[POINTS.format(i)] = row
    return out
