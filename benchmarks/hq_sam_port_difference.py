"""Why official HQ-SAM and transformers' ``SamHQModel`` give other masks from the same weights.

    python benchmarks/hq_sam_port_difference.py

Tiny random models on both sides (a 1-block, 64-wide ViT; the real prompt encoder and HQ
decoder), the official weights loaded into transformers with ``convert.sam_to_hf``. Both
decoders get the same image embedding and intermediate ViT features, and the script prints,
layer by layer, how far apart they are. Found in transformers 5.24.0 (``models/sam_hq/modeling_sam_hq.py``,
``SamHQMaskDecoder.forward``)::

    point_embedding, iou_token_out = self.transformer(...)   # the transformer's image output is
    iou_token_out = point_embedding[:, :, 0, :]              # ... named iou_token_out, overwritten
    image_embeddings = image_embeddings.transpose(2, 3).reshape(...)  # the transformer's INPUT, H<->W

The upscaling (both the SAM masks and, through ``mask_conv1``, the HQ mask) therefore starts
from the decoder's input (image embedding + dense prompt embedding, height and width swapped)
instead of the two-way transformer's output, which official HQ-SAM (``src.transpose(1, 2).view``)
and transformers' own ``SamMaskDecoder`` (``point_embedding, image_embeddings = ...``) use. The
IoU scores come from the tokens only, so they agree. The last section feeds transformers'
upscaling the transformer's output instead (a forward pre-hook) and the masks agree to float
precision: nothing else differs, and our weight converter is right.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sam_bench.models.convert import sam_to_hf  # noqa: E402
from sam_bench.models.hf_sam import upscale_transformer_output  # noqa: E402
from sam_fixtures import tiny_hf, tiny_hq  # noqa: E402



def models():
    """(official segment_anything_hq Sam, transformers SamHQModel holding the same weights), both eval:
    the tiny pair of the tests (``tests/sam_fixtures.py``)."""
    off, hf = tiny_hq(0), tiny_hf(hq=True)
    hf.load_state_dict(sam_to_hf(off.state_dict()), strict=True)
    return off, hf


def record(pairs):
    """Forward hooks: {name: output} for each (name, module); of a tuple (the two-way transformer's
    (tokens, image)) the last element, the image side."""
    seen, handles = {}, []
    for name, module in pairs:
        def hook(_m, _args, out, name=name):
            seen[name] = out[-1] if isinstance(out, tuple) else out
        handles.append(module.register_forward_hook(hook))
    return seen, handles


def decode(off, hf, image_emb, interm, multimask: bool, hq_token_only: bool):
    """(official masks (B, 1, 256, 256), transformers' best/single mask (B, 1, 256, 256), both IoU scores)."""
    pts, lab = torch.tensor([[[300.0, 400.0]]]), torch.ones(1, 1, dtype=torch.int)
    sparse, dense = off.prompt_encoder(points=(pts, lab), boxes=None, masks=None)
    m1, s1 = off.mask_decoder(image_embeddings=image_emb, image_pe=off.prompt_encoder.get_dense_pe(),
                              sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                              multimask_output=multimask, hq_token_only=hq_token_only, interm_embeddings=interm)
    out = hf(image_embeddings=image_emb, intermediate_embeddings=interm, input_points=pts[:, None],
             input_labels=lab[:, None], multimask_output=multimask, hq_token_only=hq_token_only)
    return m1, out.pred_masks[:, 0, :1], s1, out.iou_scores[:, 0, :1]


def main() -> None:
    warnings.filterwarnings("ignore")
    off, hf = models()
    torch.manual_seed(1)
    x = torch.randn(1, 3, 1024, 1024)
    od, hd = off.mask_decoder, hf.mask_decoder
    names = [("transformer (image out)", od.transformer, hd.transformer),
             ("upscaling input", od.output_upscaling[0], hd.upscale_conv1),
             ("hq mask feature conv1", od.embedding_maskfeature[0], hd.mask_conv1),
             ("embedding_encoder conv1", od.embedding_encoder[0], hd.encoder_conv1),
             ("compress_vit_feat conv1", od.compress_vit_feat[0], hd.compress_vit_conv1)]
    with torch.no_grad():
        e1, i1 = off.image_encoder(x)
        e2, i2 = hf.get_image_embeddings(x)
        print(f"encoder: embedding max|diff| {(e1 - e2).abs().max():.2e}, interm[0] {(i1[0] - i2[0]).abs().max():.2e}")
        inputs = {}
        pre = [m.register_forward_pre_hook(lambda _m, a, n=n: inputs.__setitem__(n, a[0]))
               for n, m in (("off", od.output_upscaling[0]), ("hf", hd.upscale_conv1))]
        seen_o, ho = record([(n, m) for n, m, _ in names])
        seen_h, hh = record([(n, m) for n, _, m in names])
        decode(off, hf, e1, i1, False, False)
        for h in ho + hh + pre:
            h.remove()
        print("layer by layer (same inputs, official vs transformers):")
        for n, *_ in names:
            a, b = seen_o[n], seen_h[n]
            a = a.reshape(b.shape) if a.numel() == b.numel() else a
            print(f"  {n:26s} max|diff| {(a - b).abs().max():.2e} (scale {a.abs().max():.2e})")
        b, c, h, w = inputs["off"].shape
        print(f"  transformers' upscaling input == its decoder input transposed H<->W: "
              f"{torch.allclose(inputs['hf'], (e1 + dense_of(off)).transpose(2, 3).reshape(b, c, h, w))}")
        for fix in (False, True):
            handles = from_transformer(hd) if fix else ()
            print("with the transformer's output fed to the upscaling:" if fix else "as shipped:")
            for mm in (False, True):
                for tok in (False, True):
                    m1, m2, s1, s2 = decode(off, hf, e1, i1, mm, tok)
                    iou = ((m1 > 0) & (m2 > 0)).sum() / ((m1 > 0) | (m2 > 0)).sum().clamp(min=1)
                    print(f"  multimask={mm!s:5} hq_token_only={tok!s:5} mask max|diff| {(m1 - m2).abs().max():.2e}"
                          f" (scale {m1.abs().max():.2e}), mask IoU {iou:.4f}, score max|diff| "
                          f"{(s1 - s2).abs().max():.2e}")
            for handle in handles:
                handle.remove()


def dense_of(off):
    """The official prompt encoder's dense embedding with no mask input, (1, 256, 64, 64)."""
    return off.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, 64, 64)


from_transformer = upscale_transformer_output  # the fix sam-bench offers as hf-sam option hq_fix_upscale=true


if __name__ == "__main__":
    main()
