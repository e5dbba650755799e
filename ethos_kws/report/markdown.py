"""``report.md``: the same content as the HTML page, with the plots as PNG files beside it."""

from __future__ import annotations

from .document import Banner, Collapsible, Document, FigureBlock, Heading, KeyValues, Para, TableBlock
from .escape import md_escape
from .tables import to_markdown


def _block(block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + md_escape(block.text) + "\n"
    if isinstance(block, Para):
        return md_escape(block.text) + "\n"
    if isinstance(block, Banner):
        return f"> **{md_escape(block.level.upper())}: {md_escape(block.text)}**\n"
    if isinstance(block, KeyValues):
        return "".join(f"- **{md_escape(k)}:** {md_escape(v)}\n" for k, v in block.items)
    if isinstance(block, TableBlock):
        t = block.table
        title = f"**{md_escape(t.title)}**\n\n" if t.title else ""
        return title + to_markdown(t) + (f"\n*{md_escape(t.note)}*\n" if t.note else "")
    if isinstance(block, FigureBlock):
        p = block.plot
        # our own file names: safe as link targets
        return f"![{md_escape(p.title)}]({p.filename})\n\n*{md_escape(p.caption)}*\n"
    if isinstance(block, Collapsible):
        return f"### {md_escape(block.summary)}\n\n" + "\n".join(_block(b) for b in block.blocks)
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(doc: Document, footer: str = "") -> str:
    parts = [f"# {md_escape(doc.title)}\n"]
    parts += [_block(b) for b in doc.blocks]
    if footer:
        parts.append(f"---\n\n*{md_escape(footer)}*\n")
    return "\n".join(parts)
