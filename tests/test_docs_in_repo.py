"""Issue 9 item 9: nothing a user sees cites a file outside the repository; docstrings tell the truth."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"anchors\.md|shared/docs|docs/(fvp-notes|kws-frontend|ethos-u-notes)\.md")


def test_no_user_visible_text_cites_files_outside_the_repo():
    shipped = [*ROOT.joinpath("ethos_kws").rglob("*.py"), ROOT / "README.md", *ROOT.joinpath("fvp").glob("*")]
    offenders = [str(p.relative_to(ROOT)) for p in shipped if p.is_file() and OUTSIDE.search(p.read_text())]
    assert offenders == []


def test_published_figures_cite_the_public_source():
    from ethos_kws.report.published import PUBLISHED_SOURCE

    assert "ML embedded evaluation kit 21.11" in PUBLISHED_SOURCE and "docs/use_cases/kws.md" in PUBLISHED_SOURCE


def test_conv_docstring_matches_what_it_does():
    from ethos_kws.backends.npusim.ops import conv

    doc = conv.__doc__
    assert "float32" in doc and "float64" in doc and "zero point" in doc
    src = Path(conv.__file__).read_text()
    assert "np.float32" in src and "np.float64" in src  # both types really are chosen
