"""``index.html``: one self-contained page (inline CSS, plots as data URIs, no network).

A Content-Security-Policy forbids remote loads and every script but one: the sortable-table script
of ``interactive.py``, allowed by its sha256 hash (and only on pages with sortable tables). So
even a string that escaped escaping could not run or phone home; every string is escaped all the
same.
"""

from __future__ import annotations

import base64

from .document import Banner, Collapsible, Document, FigureBlock, Heading, KeyValues, Para, TableBlock
from .escape import html_escape
from .interactive import CSS as INTERACTIVE_CSS
from .interactive import script_hash, script_tag
from .tables import to_html

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1200px; padding: 1.5em; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table.data { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
table.data th, table.data td { border: 1px solid #d0d0d0; padding: 0.25em 0.55em; vertical-align: top; }
table.data th { background: #f2f4f7; text-align: left; }
table.data tr:nth-child(even) td { background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.wrap { overflow-wrap: anywhere; max-width: 38em; }
div.table { overflow-x: auto; }
details { margin: 0.4em 0; }
details > summary { cursor: pointer; font-weight: 600; padding: 0.2em 0; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; font-size: 0.9em; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.banner { padding: 0.7em 1em; border-radius: 4px; margin: 0.8em 0; font-weight: 600; }
.banner.warning { background: #fff4ce; border: 1px solid #e0b000; }
.banner.danger { background: #c62828; color: #fff; font-size: 1.15em; text-transform: none; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
p.caption { font-weight: 600; margin: 1em 0 0.2em; }
p.note { font-size: 0.85em; color: #555; margin-top: 0.2em; }
nav ul { font-size: 0.9em; columns: 2; }
footer { margin-top: 3em; font-size: 0.8em; color: #777; }
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _block(block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{html_escape(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{html_escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{html_escape(block.text)}</p>"
    if isinstance(block, Banner):
        return f'<div class="banner {html_escape(block.level)}" role="alert">{html_escape(block.text)}</div>'
    if isinstance(block, KeyValues):
        items = "".join(f"<dt>{html_escape(k)}</dt><dd>{html_escape(v)}</dd>" for k, v in block.items)
        return f'<dl class="kv">{items}</dl>'
    if isinstance(block, TableBlock):
        t = block.table
        note = f'<p class="note">{html_escape(t.note)}</p>' if t.note else ""
        title = f'<p class="caption">{html_escape(t.title)}</p>' if t.title else ""
        return f'<div class="table">{title}{to_html(t, "data sortable" if block.sortable else "data")}{note}</div>'
    if isinstance(block, FigureBlock):
        p = block.plot
        return (
            f'<figure><img src="{_data_uri(p.png)}" alt="{html_escape(p.title)}">'
            f"<figcaption>{html_escape(p.title)}: {html_escape(p.caption)}</figcaption></figure>"
        )
    if isinstance(block, Collapsible):
        inner = "\n".join(_block(b) for b in block.blocks)
        return f"<details><summary>{html_escape(block.summary)}</summary>{inner}</details>"
    raise TypeError(f"unknown block {type(block).__name__}")


def _sortable(blocks) -> bool:
    return any((isinstance(b, TableBlock) and b.sortable) or (isinstance(b, Collapsible) and _sortable(b.blocks))
               for b in blocks)


def render_html(doc: Document, footer: str = "") -> str:
    # the one script a page may carry (sortable tables) is allowed by its hash, nothing else
    interactive = _sortable(doc.blocks)
    csp = CSP + (f"; script-src {script_hash()}" if interactive else "")
    toc = "".join(
        f'<li><a href="#{html_escape(b.anchor)}">{html_escape(b.text)}</a></li>'
        for b in doc.blocks
        if isinstance(b, Heading) and b.level == 2 and b.anchor
    )
    body = "\n".join(_block(b) for b in doc.blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html_escape(doc.title)}</title>\n<style>{CSS}{INTERACTIVE_CSS if interactive else ''}</style></head>\n<body>\n"
        f"<h1>{html_escape(doc.title)}</h1>\n"
        + (f"<nav><ul>{toc}</ul></nav>\n" if toc else "")
        + body
        + (f"\n<footer>{html_escape(footer)}</footer>" if footer else "")
        + (f"\n{script_tag()}" if interactive else "")
        + "\n</body></html>\n"
    )
