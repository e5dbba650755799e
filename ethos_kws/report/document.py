"""A report as a list of blocks, so the HTML and Markdown renderers share one content definition.

Blocks hold raw text; only the renderers escape, each for its own format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .plots import Plot
from .tables import Table


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Banner:
    """A warning nobody should miss (synthetic model, mixed Vela versions, ...)."""

    text: str
    level: str = "warning"  # "warning" | "danger"


@dataclass(frozen=True)
class KeyValues:
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TableBlock:
    table: Table
    sortable: bool = False  # HTML: sortable headers and a configuration filter (report.interactive)


@dataclass(frozen=True)
class FigureBlock:
    plot: Plot


@dataclass(frozen=True)
class Collapsible:
    """A section folded away in HTML (``<details>``, no script needed), plain in Markdown."""

    summary: str
    blocks: tuple


Block = Union[Heading, Para, Banner, KeyValues, TableBlock, FigureBlock, Collapsible]


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]

    @property
    def plots(self) -> list[Plot]:
        return [b.plot for b in self.blocks if isinstance(b, FigureBlock)]
