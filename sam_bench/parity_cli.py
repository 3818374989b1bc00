"""Check that a model and a reference agree on the same images and prompts: mask IoU between
their outputs (mean, 5th percentile, min), max |logit| and score differences, the fraction of
prompts whose chosen mask differs, per prompt kind (point / box x multimask / single); exit 1
beyond --min-iou / --max-rel-logit-diff / --max-logit-diff.

The same as `sam-bench run parity ...` (task options: `sam-bench run parity --help`). Without
--reference-checkpoint the reference receives the model's weights through the weight converter
(sam_bench.models.convert), so with --untrained the two hold one shared random init.

examples:
  sam-bench parity --model sam_vit_b --reference hf-sam --untrained
  sam-bench parity --model hq-sam --model-option variant=vit_b --reference hf-sam \\
      --reference-option hq=true --reference-option variant=vit_b --untrained
  sam-bench parity --model sam_vit_b --reference sam_vit_b --reference-option dtype=bf16 --untrained
  sam-bench parity --model sam_vit_b --prompt-batch 1 --reference sam_vit_b \\
      --reference-option prompt_batch=64 --grid 8 --untrained
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sam_bench import cli, registry

    cli._task_arguments(parser, "parity", "parity", registry.get_task("parity"), {})


def main(args: argparse.Namespace) -> int:
    from sam_bench import cli
    from sam_bench.models.options import parse_pairs

    args.task = "parity"
    if args.out is None:
        chosen = "".join(f"-{k}_{v}" for k, v in parse_pairs(args.model_option).items())
        ref = "".join(f"-{k}_{v}" for k, v in parse_pairs(args.reference_option, "--reference-option").items())
        args.out = str(Path("runs") / cli._slug(f"parity-{args.model}{chosen}-vs-{args.reference}{ref}"
                                                f"{'-untrained' if args.untrained else ''}"))
    return cli.run_main(args)
