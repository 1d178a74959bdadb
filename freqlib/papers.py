"""The three papers the book re-runs and their entries in ``references.bib``.

A claim's id starts with its paper's letter (``A2`` is a claim of paper A), so
the claims ledger can link each claim's paper to the bibliography with
:func:`cite_paper`.
"""
from __future__ import annotations

import re

__all__ = ["PAPERS", "SOURCES", "paper_of", "cite_paper"]

PAPERS = {
    "A": {"key": "wang2020towards", "short": "Z. Wang et al. 2020", "arxiv": "2005.03141",
          "code": "https://github.com/zifanw/frequency_explain", "chapter": "01_high_frequency_reliance"},
    "B": {"key": "jia2019exploring", "short": "Jia, Bao & Ma 2019", "arxiv": "1911.12044",
          "code": None, "chapter": "02_filter_proportion"},           # no code was published
    "C": {"key": "karantzas2022understanding", "short": "Karantzas et al. 2022", "arxiv": "2203.08822",
          "code": "https://github.com/nkarantzas/FourierMasks", "chapter": "03_fourier_masks"},
}


# Claims beyond the three papers (chapter 6): each is ours, after the work it tests.
SOURCES = {"D1": ("maiya2021frequency",), "D2": ("wang2023what",), "D3": ("ilyas2019adversarial", "yin2019fourier"),
           "D4": ("ilyas2019adversarial",)}


def paper_of(claim: str) -> dict | None:
    """The paper of a claim id (``"A2"`` -> ``PAPERS["A"]``); ``None`` for anything else."""
    match = re.fullmatch(r"([A-Z])\d+[a-z]?", str(claim).strip())
    return PAPERS.get(match.group(1)) if match else None


def cite_paper(claim: str, fallback: str = "—") -> str:
    """A MyST citation of the claim's paper (``{cite:t}`wang2020towards```), which the
    book renders as "Wang et al. [2020]" linked to its bibliography entry;
    ``fallback`` (the row's own text) for a claim of no known paper."""
    paper = paper_of(claim)
    if paper:
        return f"{{cite:t}}`{paper['key']}`"
    sources = SOURCES.get(str(claim).strip())
    if not sources:
        return fallback
    return "beyond the papers: ours, after " + "; ".join(f"{{cite:t}}`{k}`" for k in sources)
