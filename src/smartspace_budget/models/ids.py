"""The one grammar of ids: users, projects, providers, models, requests, reservations, keys.

An id is 1 to :data:`MAX_ID_LENGTH` Unicode characters, none of them:

- a control character (``U+0000``-``U+001F``, ``U+007F``-``U+009F``: NUL, tab, newline...);
- a format character (Unicode category Cf: every bidirectional override and isolate such as
  ``U+202E``, zero-width spaces and joiners, the byte order mark, soft hyphen...);
- a line or paragraph separator (``U+2028``, ``U+2029``), a lone surrogate;
- the replacement character ``U+FFFD`` (what a decoder writes for bytes that are not UTF-8,
  so two different malformed ids can never become one account).

Everything else is allowed, spaces and ``/`` included (a ``/`` goes in a URL path as
``%2F``). Ids are compared exactly, code point by code point: no case folding, no Unicode
normalisation. The set is fixed here (not read from the running Python's Unicode tables)
so that it is the same on every machine and in the OpenAPI document's ``pattern``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr

from smartspace_budget.errors import InvalidInputError

__all__ = [
    "FORBIDDEN_ID_RANGES",
    "IDEMPOTENCY_KEY_PATTERN",
    "ID_PATTERN",
    "MAX_ID_LENGTH",
    "TARGET_PATTERN",
    "Identifier",
    "check_id",
    "id_problem",
]

MAX_ID_LENGTH = 200
"""Longest accepted id, in characters (code points)."""

FORBIDDEN_ID_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xFFFD, 0xFFFD),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
"""Code points no id may hold (Unicode Cc, Cf, Cs, Zl, Zp and U+FFFD), as inclusive ranges."""


IDEMPOTENCY_KEY_PATTERN = "^[!-~]+$"
"""An ``Idempotency-Key`` header: 1-200 visible ASCII characters (no spaces; headers are
ASCII on the wire, and a key is compared byte for byte)."""


def _escape(code: int) -> str:
    # BMP code points as \\uXXXX (read alike by Python and ECMA-262 regexes); the few
    # astral ones as the characters themselves (``\\U`` is Python-only).
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)


def _class(*, surrogates: bool = True) -> str:
    parts = []
    for low, high in FORBIDDEN_ID_RANGES:
        if low == 0xD800 and not surrogates:
            continue
        parts.append(_escape(low) if low == high else f"{_escape(low)}-{_escape(high)}")
    return "[^" + "".join(parts) + "]"


ID_PATTERN = f"^{_class(surrogates=False)}+$"
"""The id grammar as a regular expression (length is bounded by min/max length). Lone
surrogates, which no UTF-8 text holds and not every regex engine can name, are left out of
the pattern but refused all the same."""

_ID_CHARS = re.compile(_class() + "+")

TARGET_PATTERN = (
    f"^{_class(surrogates=False)[:-1]}/]{{1,{MAX_ID_LENGTH}}}"
    f"/{_class(surrogates=False)}{{1,{MAX_ID_LENGTH}}}$"
)
"""A ``provider/model`` target (a replay's): two ids split at the first ``/``, so the
provider holds no ``/`` and the model may (``openrouter/meta-llama/llama-3-70b``)."""


def id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an id, or ``None`` when it is one."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if _ID_CHARS.fullmatch(value) is None:
        bad = next(ch for ch in value if _ID_CHARS.fullmatch(ch) is None)
        return (
            f"holds U+{ord(bad):04X}, which no id may hold (control, format, "
            "bidirectional and separator characters and U+FFFD are refused)"
        )
    return None


def check_id(value: str, name: str) -> str:
    """``value`` when it is an id (see the module docstring); else :class:`InvalidInputError`
    naming ``name``."""
    problem = id_problem(value)
    if problem is not None:
        raise InvalidInputError(f"{name} {problem}", field=name)
    return value


def _valid(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"not an id: it {problem}")
    return value


Identifier = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_ID_LENGTH, json_schema_extra={"pattern": ID_PATTERN}),
    AfterValidator(_valid),
]
"""A pydantic field holding an id (documented with the grammar's pattern)."""
