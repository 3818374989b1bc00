"""``report.html``: one page per run and per folder of runs, opening offline in any browser.

A page holds the tables and plots of the Markdown report (converted by the ``markdown`` package,
so whatever a table shows, paper rows, differences, intervals, shows here too), a leaderboard
for a folder of several runs (one row per model, one column per task's headline metric,
sortable by a few lines of plain JavaScript, linking each run's page), and the galleries
(``sam_bench.reports.gallery``). Images are files beside the page (the plots' PNGs, the
gallery's JPEGs in ``report_files/``), referenced by relative paths, so the folder is the report.
"""

from __future__ import annotations

import html
import logging
import math
import re
from pathlib import Path

from sam_bench.reports import gallery
from sam_bench.reports.runs import model_label
from sam_bench.results import atomic_write_text

log = logging.getLogger("sam_bench")

PAGE = "report.html"
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px}
th{background:#f2f2f2}td{text-align:right}td:first-child{text-align:left}
img.plot,p img{max-width:640px;display:block;margin:.5em 0}
.gal{display:flex;flex-wrap:wrap;gap:10px}.gal figure{margin:0;width:min-content}
.gal img{display:block;border:1px solid #999}.gal figcaption{font-size:12px;color:#333}
.note{color:#a40;font-style:italic}th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#999}
"""
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.classList.add('sortable');th.onclick=function(){
    var rows=Array.from(t.tBodies[0].rows),dir=th.dataset.dir==='1'?-1:1;th.dataset.dir=dir===1?'1':'-1';
    rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,y=b.cells[i].dataset.v||
      b.cells[i].textContent,nx=parseFloat(x),ny=parseFloat(y);
      if(isNaN(nx)&&isNaN(ny))return dir*x.localeCompare(y);if(isNaN(nx))return 1;if(isNaN(ny))return -1;
      return dir*(nx-ny);});
    rows.forEach(function(r){t.tBodies[0].appendChild(r);});};});});
"""


def page(title: str, body: str) -> str:
    """A whole HTML document: ``body`` (HTML) under ``title``, with the style and the sorting script."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{SORT_JS}</script></body></html>\n")


def markdown_html(text: str) -> str:
    """The report's Markdown as HTML (pipe tables included); links to a run folder ``DIR/`` point at
    its page, ``DIR/report.html``."""
    import markdown

    text = re.sub(r"\]\(([^)\s]+)/\)", rf"](\1/{PAGE})", text)
    return markdown.markdown(text, extensions=["tables"])


def gallery_html(sections: list[dict], prefix: str = "", title: str = "") -> str:
    """The galleries of one run (``gallery.build``'s sections); ``prefix``: the run folder relative to the page."""
    out = []
    for s in sections:
        out.append(f"<h3>Gallery{': ' + html.escape(title) if title else ''}, {html.escape(s['dataset'])}</h3>")
        if s.get("note"):
            out.append(f"<p class=\"note\">{html.escape(s['note'])}</p>")
        for group, what in (("worst", "lowest scores"), ("random", "a seeded random sample of the others")):
            items = [it for it in s["items"] if it["group"] == group]
            if not items:
                continue
            out.append(f"<h4>{len(items)} {group} ({what})</h4><div class=\"gal\" data-group=\"{group}\">")
            out += [f"<figure class=\"item\"><img src=\"{html.escape(prefix + it['src'])}\" alt=\""
                    f"{html.escape(it['caption'])}\"><figcaption>{html.escape(it['caption'])}</figcaption></figure>"
                    for it in items]
            out.append("</div>")
    return "\n".join(out)


def headline(task: str) -> tuple[str, bool | None] | None:
    """(metric, higher is better) a task is ranked by: the first column of its first declared table."""
    from sam_bench import registry
    from sam_bench.errors import SamBenchError

    try:
        cls = registry.get_task(task)
    except SamBenchError:
        return None
    if not cls.tables:
        return None
    metric = next(iter(cls.tables[0].columns))
    spec = cls.metric_spec(metric)
    return metric, None if spec is None else spec.higher_is_better


def _fmt(v) -> str:
    return "-" if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def _interval(ci) -> str:
    """`` [lo, hi]`` of a ``<metric>_ci`` value (a pair, or {"low", "high"}); "" when there is none."""
    if isinstance(ci, dict):
        ci = [ci.get("low", ci.get("lo")), ci.get("high", ci.get("hi"))]
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f" <small>[{_fmt(ci[0])}, {_fmt(ci[1])}]</small>"
    return ""


def leaderboard_html(entries: list[dict]) -> str:
    """One row per model, one column per preset (or task) headline metric, each cell linking its run's page."""
    done = [e for e in entries if "results" in e]
    cols: dict[str, tuple[str, bool | None]] = {}
    rows: dict[str, dict[str, tuple[float, str, str]]] = {}
    for e in done:
        task = e["results"].get("task")
        head = headline(task)
        if head is None:
            continue
        col = e.get("preset") or task
        cols.setdefault(col, head)
        metrics = e["results"].get("metrics", {})
        rows.setdefault(model_label(e["results"]), {})[col] = (metrics.get(head[0]), f"{e['dir'].rstrip('/')}/{PAGE}",
                                                               _interval(metrics.get(f"{head[0]}_ci")))
    if len(done) < 2 or not cols:
        return ""
    arrow = {True: " \u2191", False: " \u2193", None: ""}
    head_cells = "".join(f"<th>{html.escape(c)}<br><small>{html.escape(m)}{arrow[h]}</small></th>"
                         for c, (m, h) in cols.items())
    body = []
    for model, cells in sorted(rows.items()):
        tds = "".join(
            f"<td data-v=\"{'' if not isinstance(cells[c][0], (int, float)) else cells[c][0]}\">"
            f"<a href=\"{html.escape(cells[c][1])}\">{_fmt(cells[c][0])}</a>{cells[c][2]}</td>" if c in cells else
            "<td data-v=\"\">-</td>" for c in cols)
        body.append(f"<tr><td>{html.escape(model)}</td>{tds}</tr>")
    return ("<h2>Leaderboard</h2><p>One row per model; each column a run's headline metric (click a header to "
            "sort, a value to open that run's page).</p><table class=\"sortable\" id=\"leaderboard\"><thead><tr>"
            f"<th>model</th>{head_cells}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _facts(results: dict) -> str:
    ds = results.get("datasets", {})
    parts = [f"{html.escape(n)}: {d.get('num_items', 0)} items" for n, d in ds.items()]
    pred = results.get("predictions") or {}
    if pred.get("items"):
        parts.append(f"predictions saved for {pred['items']} items, {pred['mean_bytes'] / 1024:.1f} KiB per item "
                     f"(largest {pred['max_bytes'] / 1024:.1f} KiB)")
    return "<p>" + "; ".join(parts) + "</p>"


def write_run_page(results: dict, out_dir: str | Path, md_lines: list[str], datasets: list | None = None) -> Path:
    """``OUT/report.html`` of one run: its tables and plots (``md_lines``, from ``render.write_tables``)
    and its gallery (drawn from ``datasets`` when given, else from the reopened datasets)."""
    out_dir = Path(out_dir)
    title = f"sam-bench: {results.get('task')} with {model_label(results)}"
    body = [f"<h1>{html.escape(title)}</h1>", _facts(results), markdown_html("\n".join(md_lines))]
    body.append(gallery_html(gallery.build(out_dir, results, datasets)))
    atomic_write_text(out_dir / PAGE, page(title, "\n".join(body)))
    return out_dir / PAGE


def write_folder_page(run_dir: str | Path, md_text: str, entries: list[dict]) -> Path:
    """``RUN_DIR/report.html``: the folder's report.md as HTML, the leaderboard after its heading,
    and each run's gallery (read from the run's ``gallery.json``, drawn when absent)."""
    run_dir = Path(run_dir)
    head, _, rest = md_text.partition("\n## ")
    body = [markdown_html(head), leaderboard_html(entries), markdown_html("## " + rest) if rest else ""]
    seen = set()
    for e in entries:
        folder = (run_dir / e["dir"]).resolve()
        if "results" not in e or folder in seen:
            continue
        seen.add(folder)
        prefix = "" if folder == run_dir.resolve() else f"{e['dir'].rstrip('/')}/"
        label = f"{e.get('preset') or e['results'].get('task')} with {model_label(e['results'])}"
        body.append(gallery_html(gallery.load_or_build(folder, e["results"]), prefix, label))
    title = f"sam-bench report: {run_dir.resolve().name}"
    atomic_write_text(run_dir / PAGE, page(title, "\n".join(body)))
    return run_dir / PAGE
