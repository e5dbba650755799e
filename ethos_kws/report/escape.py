"""Making strings from models and files inert: HTML, Markdown and Matplotlib text.

Tensor names, model file names and anything else read from a file are data, never markup. Every
renderer passes them through one of these functions.
"""

from __future__ import annotations

import html
import re

# CommonMark lets a backslash escape any ASCII punctuation. These are the characters that can start
# markup anywhere in a line: emphasis, code spans, links and images (their "[" is enough), raw HTML
# and autolinks, entities, table cells, strikethrough and GitHub's math, and a heading's closing "#".
# Our strings never start a line, so list markers and setext underlines need no escape.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&$])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")


def one_line(text: object) -> str:
    return _LINE_BREAKS.sub(" ", str(text))


def md_escape(text: object) -> str:
    """Escape a string for a Markdown paragraph or a GFM table cell (one line, no markup)."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def html_escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def mpl_text(text: object) -> str:
    """Matplotlib treats ``$...$`` as mathtext; a literal dollar keeps a tensor name as text."""
    return one_line(text).replace("\\", "\\\\").replace("$", r"\$")
