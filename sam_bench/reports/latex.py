"""LaTeX a paper can paste: booktabs rules, numbers right-aligned, the best value per column bold,
paper rows, ours and differences in separate blocks, a caption and a ``\\label``.

Everything is escaped for plain ``pdflatex`` with the default OT1 fonts and no extra package
beyond booktabs: in OT1 text mode ``<``, ``>`` and ``|`` print as other glyphs (``>=20`` comes out
as an inverted question mark), so they go through math mode, as do the Unicode symbols the
tables use (Δ, −, ≥); ``% & _ # $ { } ~ ^ \\`` are escaped. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

KINDS = ("paper", "ours", "delta")  # block order in the LaTeX table
MISSING = "--"

_SYMBOLS = {">=": r"$\geq$", "<=": r"$\leq$", "≥": r"$\geq$", "≤": r"$\leq$", "Δ": r"$\Delta$", "−": r"$-$",
            "±": r"$\pm$", "×": r"$\times$", "→": r"$\rightarrow$", "…": r"\dots{}", "–": "--", "—": "---",
            "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"$<$", ">": r"$>$", "|": r"$|$"}
# a hyphen before another is kept apart ("-{}-"): "--limit" must not print as an en dash
_TOKEN = re.compile("-(?=-)|" + "|".join(re.escape(k) for k in sorted(_SYMBOLS, key=len, reverse=True)))
_ACCENTS = {"\u0301": "\\'{}", "\u0300": "\\`{}", "\u0308": '\\"{}', "\u0302": "\\^{}", "\u0303": "\\~{}",
            "\u0327": "\\c{{{}}}"}  # combining mark -> accent command around the base letter


@dataclass(frozen=True)
class RowInfo:
    """What a table row is: ``kind`` paper / ours / delta (its block in LaTeX; a delta is never bold)."""

    kind: str = "ours"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"row kind {self.kind!r} is not one of {KINDS}")


def _ascii(ch: str) -> str:
    """A non-ASCII letter as a LaTeX accent command where it has one (é -> \\'e), else its closest ASCII."""
    base, *marks = unicodedata.normalize("NFD", ch)
    if len(marks) == 1 and marks[0] in _ACCENTS and base.isascii():
        return _ACCENTS[marks[0]].format(base)
    folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return folded or "?"


def escape(text: Any) -> str:
    """``text`` as LaTeX source that compiles with plain pdflatex (see module docstring); ASCII only."""
    out = _TOKEN.sub(lambda m: _SYMBOLS.get(m.group(0), "-{}"), str(text))
    return "".join(ch if ch.isascii() else _ascii(ch) for ch in out)


def _is_numeric(v: Any) -> bool:
    """An int or float, numpy's included, not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite number: what a table compares and may set in bold."""
    return _is_numeric(v) and math.isfinite(v)


def is_missing(v: Any) -> bool:
    return v is None or (_is_numeric(v) and math.isnan(v))


def cell_text(v: Any, floatfmt: str) -> str:
    """One value as plain text: floats with ``floatfmt``, ints as they are, missing as ``MISSING``."""
    if is_missing(v):
        return MISSING
    if _is_numeric(v) and not isinstance(v, numbers.Integral):
        return format(float(v), floatfmt)
    return str(v)


def _cell(v: Any, floatfmt: str, bold: bool) -> str:
    text = cell_text(v, floatfmt)
    if _is_numeric(v) and not is_missing(v):
        text = f"$-${text[1:]}" if text.startswith("-") else text
    else:
        text = text if is_missing(v) else escape(text)
    return f"\\textbf{{{text}}}" if bold else text


def numeric_columns(rows: Sequence[Sequence[Any]], ncols: int) -> list[bool]:
    """Per column: True when every value present is a number (a metric column, right-aligned)."""
    return [all(_is_numeric(r[j]) for r in rows if not is_missing(r[j])) for j in range(ncols)]


def best_cells(rows: Sequence[Sequence[Any]], kinds: Sequence[str], better: Mapping[int, bool],
               floatfmt: str) -> set[tuple[int, int]]:
    """(row, column) of the best value per column with a direction (True: higher is better), over the
    paper and our rows (differences never count); ties at the shown precision are all best."""
    out = set()
    for j, higher in better.items():
        vals = [(i, r[j]) for i, r in enumerate(rows) if kinds[i] != "delta" and is_number(r[j])]
        if len(vals) < 2:
            continue
        best = (max if higher else min)(v for _, v in vals)
        shown = cell_text(best, floatfmt)
        out |= {(i, j) for i, v in vals if cell_text(v, floatfmt) == shown}
    return out


def sentences(parts: Sequence[str]) -> str:
    """Non-empty ``parts`` as one text, a full stop after each that lacks one."""
    parts = [p.strip() for p in parts if p and p.strip()]
    return " ".join(p if p[-1] in ".!?" else p + "." for p in parts)


def label_of(stem: str) -> str:
    """``\\label`` key of a table: ``tab:`` and the stem in letters, digits and dashes."""
    return "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-")


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str | None, stem: str,
           floatfmt: str = ".1f", info: Sequence[RowInfo] | None = None, better: Mapping[str, bool] | None = None,
           notes: Sequence[str] = ()) -> str:
    """A ``table`` float: caption (with ``notes`` after it), label, then a booktabs ``tabular`` whose
    rows are grouped paper / ours / delta (a ``\\midrule`` between groups, order kept within one).
    The document needs ``\\usepackage{booktabs}``.

    ``rows``: one sequence of values per row, in ``columns`` order. ``better``: column title ->
    higher is better, for the columns whose best value is set in bold.
    """
    info = list(info) if info is not None else [RowInfo()] * len(rows)
    if len(info) != len(rows):
        raise ValueError(f"{len(info)} row descriptions for {len(rows)} rows")
    order = sorted(range(len(rows)), key=lambda i: KINDS.index(info[i].kind))
    rows = [list(rows[i]) for i in order]
    kinds = [info[i].kind for i in order]
    numeric = numeric_columns(rows, len(columns))
    directions = {j: better[c] for j, c in enumerate(columns) if better and c in better and numeric[j]}
    bold = best_cells(rows, kinds, directions, floatfmt)
    text = escape(sentences([caption or "", *notes]))
    lines = ["\\begin{table}[t]", "\\centering"]
    if text:
        lines.append(f"\\caption{{{text}}}")
    lines += [f"\\label{{{label_of(stem)}}}", "\\begin{tabular}{" + "".join("r" if n else "l" for n in numeric) + "}",
              "\\toprule", " & ".join(escape(c) for c in columns) + " \\\\", "\\midrule"]
    for i, row in enumerate(rows):
        if i and kinds[i] != kinds[i - 1]:
            lines.append("\\midrule")
        lines.append(" & ".join(_cell(v, floatfmt, (i, j) in bold) for j, v in enumerate(row)) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)
