"""The README tells a new user what they need before its examples run (issue 18)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_guard_section_says_how_to_install_the_sdks_and_guards_in_one_line() -> None:
    guard = _section("Guarding an OpenAI or Anthropic client")
    install = guard.index("smartspace-budget[guard]")
    assert install < guard.index("import openai")  # said before the first example
    assert "smartspace_budget.guard.wrap(" in guard
