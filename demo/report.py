"""The report written at the end of the demo: PNG plots plus Markdown and HTML pages."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnrec.demo.metrics import DemoMetrics, Scored  # noqa: E402


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
    """Moving averages of the three methods' hits, the version flips as vertical lines."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    rows = metrics.prequential
    if len(rows) >= 2:
        x = np.array([r.position for r in rows])
        window = max(1, min(window, len(rows) // 5))
        kernel = np.ones(window) / window
        for method, label, colour, style in (("served", "served (online versions)", "#C44E52", "-"),
                                             ("frozen", f"frozen ({metrics.frozen_version})", "#4C72B0", "--"),
                                             ("popularity", "popularity", "#8C8C8C", "-")):
            hits = np.array([float(getattr(r, method)) for r in rows])
            ax.plot(x[window - 1:], np.convolve(hits, kernel, mode="valid"), style, label=label, color=colour)
        for n, (position, _version) in enumerate(metrics.versions[1:]):
            ax.axvline(position, color="#55A868", alpha=0.5, linewidth=1,
                       label="new version serving" if n == 0 else None)
        ax.axvline(rows[len(rows) // 2].position, color="black", linestyle=":", linewidth=1,
                   label="second half starts")
        ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax.set_title(f"Prequential Recall@10 (moving average over {window} scored events)")
    ax.set_xlabel("interactions published")
    ax.set_ylabel("Recall@10")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _frozen_note(metrics: DemoMetrics, check: dict[str, int]) -> str:
    first = metrics.versions[0][1] if metrics.versions else None
    origin = ("the first version served" if metrics.frozen_version == first else
              f"published by the online trainer before the live stream; the first version served was {first}")
    return (f"The frozen version {metrics.frozen_version} is {origin}. While it served, {check['same_hit']} of "
            f"{check['requests_served_by_frozen_version']} requests got the same hit or miss from served and frozen "
            "(same model, same request: a check that the frozen scoring reproduces serving).")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _recall_table(summary: dict) -> list[str]:
    pre = summary["prequential"]
    lines = ["| method | first half | second half | overall |", "|---|---|---|---|"]
    for method in ("served", "frozen", "popularity"):
        lines.append(f"| {method} | " + " | ".join(_figure(pre[part][method])
                                                   for part in ("first_half", "second_half", "overall")) + " |")
    return lines


def _gate_table(metrics: DemoMetrics) -> list[str]:
    if not metrics.gate_decisions:
        return ["(no gate decision in this run)"]
    start = metrics.stream_started_at or metrics.gate_decisions[0].at
    lines = ["| when | candidate | current | events | candidate Recall@10 | current Recall@10 | decision | "
             "live interactions trained | reason |", "|---|---|---|---|---|---|---|---|---|"]
    for d in metrics.gate_decisions:
        when = f"{time.strftime('%H:%M:%S', time.localtime(d.at))} ({d.at - start:+.0f} s)"
        trained = metrics.live_trained(d.candidate)
        lines.append(f"| {when} | {d.candidate} | {d.current or '-'} | {d.events} | {_figure(d.candidate_recall)} | "
                     f"{_figure(d.current_recall)} | {'published' if d.published else 'held'} | "
                     f"{'-' if trained is None else f'about {trained}'} | {d.reason.replace('|', '/')} |")
    return lines


def _new_item_table(metrics: DemoMetrics) -> list[str]:
    story = metrics.new_item
    if story is None:
        return ["(no click on a new item in this run)"]
    k = metrics.new_item_clicks[0].k
    lines = [f"Item **{story.item_id}** ({story.title.replace('|', '/')}), the new item clicked most, first "
             f"clicked after {story.first_click_position} interactions of the stream. Before each of its clicks "
             f"the demo asked the API for that user's top {k} and found the item's rank there (1 is the top; an "
             f"item already in the user's history is excluded by the API). *published after click* says how many "
             f"of the item's clicks came before the answering version started serving; *clicks trained* about "
             f"how many of them that version was trained on (the trainer's consumer offsets when the version "
             f"appeared, less the history and the {metrics.gate_events} most recent interactions it holds back "
             f"for its publish gate); *ID row* whether the version's ID table has a row for the item, which the "
             f"trainer adds once enough of its interactions are trained (before that the item is scored from "
             f"its content alone). Ranks differ from user to user: compare versions over several clicks.", "",
             "| click | interactions before | version serving | published after click | clicks trained | "
             "ID row | rank |", "|---|---|---|---|---|---|---|"]
    for row in story.rows:
        rank = (str(row["rank"]) if row["rank"] is not None else
                "excluded (in history)" if row["seen"] else
                "not servable yet" if not row["servable"] else
                "not among the popular items (no history)" if row["source"] != "personal" else f"not in top {k}")
        after = f"#{row['after_click']}" if row["after_click"] else "before its first click"
        trained = "?" if row["trained_clicks"] is None else row["trained_clicks"]
        lines.append(f"| {row['click']} | {row['position']} | {row['version']} | {after} | {trained} | "
                     f"{'yes' if row['id_row'] else 'no'} | {rank} |")
    ranks: dict[str, list[int]] = {}  # version -> the item's ranks in its answers
    for row in story.rows:
        if row["rank"] is not None:
            ranks.setdefault(row["version"], []).append(row["rank"])
    medians = "; ".join(f"{v}: {np.median(r):g} ({len(r)} clicks)" for v, r in ranks.items())
    return lines + ["", f"Median rank per version: {medians or '-'}."]


def write_report(metrics: DemoMetrics, folder: Path, title: str) -> Path:
    """Write plots, ``summary.json``, ``report.md`` and ``report.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _histogram(metrics.freshness_ms, "Freshness: item event to servable vector", "ms", folder / "freshness.png")
    _histogram(metrics.latency_ms, "Serving latency (HTTP, end to end)", "ms", folder / "latency.png")
    _prequential(metrics, folder / "prequential.png")
    with (folder / "prequential.csv").open("w") as fh:  # the data behind the curves, one row per request
        fh.write(",".join(Scored._fields) + "\n")
        fh.writelines(",".join(str(int(v) if isinstance(v, bool) else v) for v in row) + "\n"
                      for row in metrics.prequential)
    summary = metrics.summary()
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))

    pre, gate = summary["prequential"], summary["gate"]
    lines = [f"# {title}", "",
             f"{summary['interactions_published']} interactions replayed, {pre['scored']} scored; "
             f"{len(metrics.versions)} model versions served; publish gate: {gate['published']} published, "
             f"{gate['held']} held. The whole summary is at the end (and in summary.json).", "",
             *_recall_table(summary), "",
             "## Freshness", "", "![freshness](freshness.png)", "",
              "## Serving latency", "", "![latency](latency.png)", "",
              "## Prequential Recall@10: served vs frozen vs popularity", "",
              "Before each interaction is published, the demo asks the API for that user's top 10 and "
              "checks whether the item they are about to click is among them (served). On the same "
              f"request, a frozen copy of the version serving when the live stream began "
              f"({metrics.frozen_version}) ranks the catalogue known at that moment (new items get vectors "
              "from its item tower as they arrive) from the same history, excluding the same items; "
              "popularity ranks by interaction counts so far. Served minus frozen is what online learning "
              "added; green lines mark the versions the trainer published.", "",
              "![prequential](prequential.png)", "", _frozen_note(metrics, pre["frozen_check"]), "",
              "Every scored request, with the version that answered it: [prequential.csv](prequential.csv).", "",
              "## Publish gate", "",
              "Each candidate version is scored on the trainer's held-back events (recent interactions no "
              "model trained on) against the serving version; it is published unless its Recall@10 is "
              "lower by more than the tolerance beyond the noise of the paired comparison (two standard "
              "errors). Times are wall clock (seconds from the start of the live "
              "stream). *live interactions trained* estimates, for a published version, how many "
              "interactions of the live stream it had learned from (see the next section; a held candidate "
              "never served, so it has no estimate).", "", *_gate_table(metrics), "",
              "## A new item, version after version", "", *_new_item_table(metrics), ""]
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
    lines += ["## Summary (summary.json)", "", "```json", json.dumps(summary, indent=2), "```", ""]
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
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{_inline(c)}</{'th' if i == 0 else 'td'}>"
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
            out.append(f"<li>{_inline(line.split(' ', 1)[1])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with Markdown's ``**bold**``, ``*italic*`` and ``[links](url)``."""
    text = re.sub(r"\*\*(\S(?:.*?\S)?)\*\*", r"<b>\1</b>", html.escape(text, quote=False))
    text = re.sub(r"\*(\S(?:.*?\S)?)\*", r"<i>\1</i>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"<a href='\2'>\1</a>", text)
