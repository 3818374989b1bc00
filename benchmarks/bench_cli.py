"""Wall time of the help and listing commands, now and on earlier commits (issue #13).

    python benchmarks/bench_cli.py                       # now vs c019f1c, median of 5, writes the JSON
    python benchmarks/bench_cli.py --before c019f1c HEAD   # also against the last commit
    python benchmarks/bench_cli.py --before --repeats 3    # this checkout only

Each command runs in a fresh interpreter as ``python -c "...; from sam_bench.cli import main; ..."``
with ``PYTHONPATH`` and the working folder set to the tree under test, so "before" imports the old
package (extracted with ``git archive COMMIT``) and "now" this checkout. Runs alternate between the
trees after one untimed warm-up each; a command an old tree lacks is shown as "-". Besides the times,
one more run per command records which heavy libraries (torch, matplotlib, transformers, cv2, pandas,
scipy, skimage, pycocotools) it imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = ".bench_cli_tree"  # marks a folder this script unpacked, so it may empty it again
COMMANDS = [("--help",), ("--version",), ("run", "--help"), ("run", "single-point", "--help"),
            ("models", "list"), ("datasets", "list"), ("tasks", "list")]
HEAVY = ("torch", "matplotlib", "transformers", "cv2", "pandas", "scipy", "skimage", "pycocotools")
RUN = "import sys; sys.argv = ['sam-bench', *sys.argv[1:]]; from sam_bench.cli import main; sys.exit(main())"
PROBE = ("import contextlib, io, json, sys; from sam_bench.cli import main\n"
         "with contextlib.redirect_stdout(io.StringIO()):\n"
         "    try: main(sys.argv[1:])\n"
         "    except SystemExit: pass\n"
         f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))")


def extract(commit: str, dest: Path) -> Path:
    """``git archive COMMIT`` unpacked into an empty ``dest`` (a folder this script unpacked before is emptied)."""
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MARK).is_file():
            raise SystemExit(f"{dest}: not empty and not unpacked by this script; choose another --before-dir")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / MARK).write_text(commit + "\n")
    with subprocess.Popen(["git", "-C", str(REPO), "archive", commit], stdout=subprocess.PIPE) as git:
        with tarfile.open(fileobj=git.stdout, mode="r|") as tar:
            tar.extractall(dest, filter="data")
    if git.returncode:
        raise SystemExit(f"git archive {commit} failed (exit {git.returncode})")
    return dest


def short(commit: str) -> str:
    """The abbreviated id of ``commit`` (``HEAD`` -> ``b20103a``)."""
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", commit], capture_output=True, text=True,
                          check=True).stdout.strip()


def env_for(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(root)}


def package_of(root: Path) -> str:
    """The sam_bench folder a run in ``root`` imports (checks the old tree really is the one used)."""
    out = subprocess.run([sys.executable, "-c", "import sam_bench; print(sam_bench.__file__)"], cwd=root,
                         env=env_for(root), capture_output=True, text=True, check=True)
    return str(Path(out.stdout.strip()).parent)


def once(root: Path, args: tuple[str, ...]) -> float | None:
    """Seconds of one run of ``sam-bench ARGS`` in ``root``; None when that tree has no such command."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", RUN, *args], cwd=root, env=env_for(root),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode == 2 and "invalid choice" in p.stderr:
        return None
    if p.returncode:
        raise SystemExit(f"sam-bench {' '.join(args)} in {root}: exit {p.returncode}\n{p.stderr[-1500:]}")
    return seconds


def heavy_imports(root: Path, args: tuple[str, ...]) -> list[str]:
    """Which of ``HEAVY`` one run of ``sam-bench ARGS`` in ``root`` imported."""
    p = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=root, env=env_for(root), capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(trees: dict[str, Path], repeats: int) -> list[dict]:
    """One row per command: median seconds, every run, and heavy imports per tree (None: no such command)."""
    rows = []
    for args in COMMANDS:
        present = {name: root for name, root in trees.items() if once(root, args) is not None}  # + warm-up
        runs: dict[str, list[float]] = {name: [] for name in present}
        for _ in range(repeats):
            for name, root in present.items():
                runs[name].append(once(root, args))
        row = {"command": "sam-bench " + " ".join(args),
               "median_s": {n: round(statistics.median(runs[n]), 3) if n in runs else None for n in trees},
               "runs_s": {n: [round(t, 3) for t in runs[n]] for n in runs},
               "heavy_imports": {n: heavy_imports(root, args) if n in runs else None for n, root in trees.items()}}
        rows.append(row)
        print(f"  {row['command']}: " + ", ".join(f"{n} {v} s" for n, v in row["median_s"].items()), file=sys.stderr)
    return rows


def table(rows: list[dict], names: list[str]) -> str:
    """Markdown: median seconds per tree, the speedup of "now" over each earlier tree, heavy imports."""
    old = [n for n in names if n != "now"]
    head = ["command", *[f"{n} s" for n in names], *[f"vs {n}" for n in old], *[f"imports ({n})" for n in names]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        med, imp = r["median_s"], r["heavy_imports"]
        cells = [f"`{r['command']}`", *["-" if med[n] is None else f"{med[n]:.2f}" for n in names],
                 *["-" if med[n] is None else f"{med[n] / med['now']:.0f}x" for n in old],
                 *["(no such command)" if imp[n] is None else ", ".join(imp[n]) or "none" for n in names]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", nargs="*", default=["c019f1c"], metavar="COMMIT",
                   help="earlier commits to compare with (default c019f1c; none: this checkout only)")
    p.add_argument("--before-dir", default="/tmp/bench_before", help="their trees are unpacked under it")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per command and tree (median reported)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cli_help_cpu_2core.json"),
                   help="JSON written here ('-' for none)")
    args = p.parse_args(argv)
    base = Path(args.before_dir)
    commits = [short(c) for c in args.before]
    trees = {c: extract(c, base if len(commits) == 1 else base / c) for c in commits}
    trees["now"] = REPO
    for name, root in trees.items():
        found = package_of(root)
        if Path(found) != root / "sam_bench":
            raise SystemExit(f"{name}: runs in {root} import {found}, not {root / 'sam_bench'}")
    load = os.getloadavg()[0]
    rows = measure(trees, args.repeats)
    out = {"what": "wall seconds of one sam-bench command in a fresh interpreter, median of repeats",
           "repeats": args.repeats, "trees": {**{c: f"git archive {c}" for c in commits},
                                              "now": f"working tree on {short('HEAD')}"},
           "python": platform.python_version(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable)",
           "load_average_1min": {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)},
           "note": "the machine was shared with other work; runs alternate between trees so each command's "
                   "figures saw the same load",
           "results": rows}
    print(table(rows, list(trees)))
    if args.out != "-":
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
