"""`python -m sam_bench` (and `torchrun -m sam_bench`) runs the CLI."""

from sam_bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
