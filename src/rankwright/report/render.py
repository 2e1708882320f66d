"""Writing the proposal: proposal.yaml, report.md and a self-contained report.html.

The text of both reports comes from `document.build`; this module only lays it out.
Markdown is wrapped to 80 columns, with tables aligned for reading in a terminal. The
HTML page needs nothing beyond itself: inline CSS and the charts as base64 PNGs.
"""

from __future__ import annotations

import base64
import html
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rankwright.report.document import (
    Block,
    Bullets,
    Code,
    Document,
    Heading,
    Paragraph,
    Plot,
    Table,
    build,
)
from rankwright.report.plots import Chart, draw_all
from rankwright.report.proposal import Proposal

WIDTH = 80
FILES = {"md": "report.md", "html": "report.html", "yaml": "proposal.yaml"}


def write_report(proposal: Proposal, out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.html and proposal.yaml into `out_dir` (created if missing).

    Returns their paths by kind: {"md": ..., "html": ..., "yaml": ...}. The YAML file is
    the proposal's run config, ready for `rankwright train proposal.yaml`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in FILES.items()}
    paths["yaml"].write_text(proposal_yaml(proposal), encoding="utf-8")
    config_path = paths["yaml"].resolve()
    paths["md"].write_text(render_markdown(proposal, config_path), encoding="utf-8")
    paths["html"].write_text(render_html(proposal, config_path), encoding="utf-8")
    return paths


# --- proposal.yaml ---------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """Mappings as dicts and tuples as lists: what a YAML run config holds."""
    if isinstance(value, Mapping):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _comment(text: str) -> str:
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, WIDTH - 2, break_long_words=False, break_on_hyphens=False) or [""]
    return "\n".join(f"# {line}".rstrip() for line in lines)


def proposal_yaml(proposal: Proposal) -> str:
    """The proposal's run config as YAML, headed by comments; it loads back to `proposal_config`."""
    head = [
        _comment(f"Proposal of campaign {proposal.campaign}"),
        _comment(" ".join(proposal.headline.split())) if proposal.headline.strip() else "",
        _comment(f"Train it: {proposal.reproduce}"),
    ]
    body = yaml.safe_dump(_plain(proposal.proposal_config), sort_keys=False, default_flow_style=False,
                          allow_unicode=True) if proposal.proposal_config else "{}\n"
    return "\n".join(part for part in head if part) + "\n\n" + body


# --- Markdown --------------------------------------------------------------------------

_LIST_START = re.compile(r"^([-+*>#]|\d+[.)])(\s|$)")


def _wrap(text: str, first: str = "", rest: str = "") -> str:
    lines = textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False) or [first.rstrip()]
    # A wrapped line must not start a list, a quote or a heading by accident.
    return "\n".join(
        line if i == 0 or not _LIST_START.match(line[len(rest):]) else rest + "\\" + line[len(rest):]
        for i, line in enumerate(lines)
    )


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_table(table: Table) -> str:
    rows = [[_md_cell(c) for c in table.header]] + [[_md_cell(c) for c in row] for row in table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.header))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, table.numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if right else ("-" * (w + 2))
                          for w, right in zip(widths, table.numeric)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])


def _md_block(block: Block) -> str | None:
    if isinstance(block, Paragraph):
        return _wrap(block.text)
    if isinstance(block, Bullets):
        return "\n".join(_wrap(item, "- ", "  ") for item in block.items)
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    if isinstance(block, Heading):
        return f"### {block.text}"
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Plot):
        return None  # charts are in report.html
    raise TypeError(f"unknown block {block!r}")


def _markdown(document: Document) -> str:
    parts = [f"# {document.title}"]
    parts += [text for block in document.intro if (text := _md_block(block)) is not None]
    parts.append(_wrap("The charts are in report.html, next to this file."))
    for section in document.sections:
        parts.append(f"## {section.title}")
        parts += [text for block in section.blocks if (text := _md_block(block)) is not None]
    return "\n\n".join(parts) + "\n"


def render_markdown(proposal: Proposal, config_path: Path | None = None) -> str:
    """report.md's text; `config_path` is named as where proposal.yaml is."""
    return _markdown(build(proposal, config_path))


# --- HTML ------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f4f4f4; padding: .6rem .8rem; border-radius: 4px; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption, p.missing { color: #555; font-size: .9rem; }
""".strip()


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_NUM = ' class="num"'


def _html_table(table: Table) -> str:
    def cells(tag: str, row: tuple[str, ...]) -> str:
        return "".join(f"<{tag}{_NUM if right else ''}>{_e(c)}</{tag}>" for c, right in zip(row, table.numeric))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in table.rows)
    return f"<table><thead><tr>{cells('th', table.header)}</tr></thead><tbody>{body}</tbody></table>"


def _html_chart(chart: Chart) -> str:
    if chart.png is None:
        return f'<p class="missing">{_e(chart.note)}</p>'
    data = base64.b64encode(chart.png).decode("ascii")
    return (f'<figure><img alt="{_e(chart.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(chart.note)}</figcaption></figure>")


def _html_block(block: Block, charts: Mapping[str, Chart]) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre><code>{_e(block.text)}</code></pre>"
    if isinstance(block, Heading):
        return f"<h3>{_e(block.text)}</h3>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Plot):
        return _html_chart(charts[block.key])
    raise TypeError(f"unknown block {block!r}")


def _html(document: Document, charts: Mapping[str, Chart]) -> str:
    parts = [f"<h1>{_e(document.title)}</h1>"]
    parts += [_html_block(block, charts) for block in document.intro]
    for section in document.sections:
        parts.append(f"<section><h2>{_e(section.title)}</h2>")
        parts += [_html_block(block, charts) for block in section.blocks]
        parts.append("</section>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_e(document.title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def render_html(proposal: Proposal, config_path: Path | None = None) -> str:
    """report.html's text, charts included."""
    return _html(build(proposal, config_path), draw_all(proposal))
