"""The report written at the end of the demo: PNG plots plus Markdown and HTML pages."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from demo.metrics import DemoMetrics  # noqa: E402


def _histogram(values: list[float], title: str, xlabel: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if values:
        ax.hist(values, bins=40, color="#4C72B0")
        for q, style in ((50, "--"), (99, ":")):
            v = float(np.percentile(values, q))
            ax.axvline(v, color="black", linestyle=style, label=f"p{q} = {v:.1f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _prequential(metrics: DemoMetrics, path: Path, window: int = 200) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    rows = metrics.prequential
    if len(rows) >= 2:
        x = np.array([r[0] for r in rows])
        w = max(1, min(window, len(rows) // 5))
        kernel = np.ones(w) / w
        for column, label, colour in ((1, "served model (online)", "#C44E52"), (2, "popularity", "#8C8C8C")):
            hits = np.array([float(r[column]) for r in rows])
            smooth = np.convolve(hits, kernel, mode="valid")
            ax.plot(x[w - 1:], smooth, label=label, color=colour)
        for n, (position, _version) in enumerate(metrics.versions):
            ax.axvline(position, color="#55A868", alpha=0.4, linewidth=1,
                       label="new model version" if n == 0 else None)
        ax.legend()
        window = w
    ax.set_title(f"Prequential Recall@10 (moving average over {window} scored events)")
    ax.set_xlabel("interactions published")
    ax.set_ylabel("Recall@10")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(metrics: DemoMetrics, folder: Path, title: str) -> Path:
    """Write plots, ``summary.json``, ``report.md`` and ``report.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _histogram(metrics.freshness_ms, "Freshness: item event to servable vector", "ms", folder / "freshness.png")
    _histogram(metrics.latency_ms, "Serving latency (HTTP, end to end)", "ms", folder / "latency.png")
    _prequential(metrics, folder / "prequential.png")
    summary = metrics.summary()
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))

    lines = [f"# {title}", "", "## Summary", "", "```json", json.dumps(summary, indent=2), "```", ""]
    lines += ["## Freshness", "", "![freshness](freshness.png)", "",
              "## Serving latency", "", "![latency](latency.png)", "",
              "## Prequential Recall@10", "",
              "Before each scored interaction is published, the demo asks the API for that user's "
              "top 10 and checks whether the item they are about to click is among them; the "
              "popularity baseline ranks by counts so far.", "", "![prequential](prequential.png)", ""]
    lines += ["## New items, recommended seconds after they arrived", ""]
    if metrics.cold_starts:
        lines += ["| item | title | announced after | recommended to | rank | seconds after publish |",
                  "|---|---|---|---|---|---|"]
        for ex in metrics.cold_starts[:15]:
            title = ex.title.replace("|", "/")  # a pipe would split the table cell
            lines.append(f"| {ex.item_id} | {title} | {ex.announced_ms:.0f} ms | {ex.user_id} | "
                         f"{ex.rank} | {ex.seconds_after_publish:.2f} |")
    else:
        lines.append("(none in this run)")
    lines += ["", "## Users: recent history and recommendations", ""]
    for user in metrics.users:
        lines += [f"### {user.user_id} (model {user.version})", "", "Recent history (oldest first):", ""]
        lines += [f"- {t}" for t in user.history] + ["", "Recommendations:", ""]
        lines += [f"{n}. {t}{'  **(new item)**' if t in user.new_items else ''}"
                  for n, t in enumerate(user.recommendations, 1)] + [""]
    markdown = "\n".join(lines)
    (folder / "report.md").write_text(markdown)
    (folder / "report.html").write_text(_markdown_to_html(markdown, title))
    return folder / "report.html"


def _markdown_to_html(markdown: str, title: str) -> str:
    """A small converter for the subset of Markdown the report uses."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f4f4f4;padding:1em}</style></head><body>"]
    in_code = in_list = False
    table: list[list[str]] = []
    for line in markdown.splitlines() + [""]:
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        if table:
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>"
                                 for c in row) + "</tr>" for i, row in enumerate(table)) + "</table>")
            table = []
        is_item = line.startswith("- ") or (line[:1].isdigit() and ". " in line[:5])
        if is_item and not in_list:
            out.append("<ul>")
            in_list = True
        elif not is_item and in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1: line.rindex(")")]
            out.append(f"<p><img src='{html.escape(src)}' style='max-width:100%'></p>")
        elif is_item:
            text = line.split(" ", 1)[1]
            strong = "**(new item)**" in text
            text = html.escape(text.replace("  **(new item)**", ""))
            out.append(f"<li>{text}{' <b>(new item)</b>' if strong else ''}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    out.append("</body></html>")
    return "\n".join(out)
