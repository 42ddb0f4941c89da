"""The spec's three example response documents, read from the spec itself when it is here.

``/work/shared/spec/budget-cost-system.md`` (or ``SMARTSPACE_BUDGET_SPEC_FILE``), section
"Expected Response Formats", is the source; where the file is absent (a checkout without the
shared directory) the verbatim copies in ``test_spec_documents`` stand in for it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.models.test_spec_documents import SPEC_ANALYTICS, SPEC_PRICING, SPEC_STATUS

SPEC_FILE = Path(
    os.environ.get(
        "SMARTSPACE_BUDGET_SPEC_FILE",
        Path(__file__).resolve().parents[3] / "shared" / "spec" / "budget-cost-system.md",
    )
)

TITLES = ("Budget Status", "Pricing Data", "Spending Analytics")
VERBATIM = dict(zip(TITLES, (SPEC_STATUS, SPEC_PRICING, SPEC_ANALYTICS), strict=True))


def from_spec_file(path: Path = SPEC_FILE) -> dict[str, str]:
    """Each titled ```json block of the section, by title; fails loudly if one is missing."""
    text = path.read_text(encoding="utf-8")
    start = text.index("### Expected Response Formats")
    end = text.find("\n---", start)
    section = text[start : end if end != -1 else len(text)]
    documents = {}
    for title in TITLES:
        found = re.search(rf"\*\*{re.escape(title)}\*\*:\s*```json\n(.*?)\n```", section, re.S)
        assert found is not None, f"no {title} document in {path}"
        documents[title] = found[1]
    return documents


def spec_documents() -> dict[str, str]:
    """The spec file's documents when it is present, else the verbatim copies."""
    return from_spec_file() if SPEC_FILE.is_file() else dict(VERBATIM)
