"""The ledger: append-only entries, holds, hourly and daily rollups, on SQLite or PostgreSQL.

``Ledger`` is the one object the in-process backend and the service use; ``create_engine``
and ``default_database_url`` say where it lives; ``upgrade`` migrates a database.
"""

from smartspace_budget.ledger.engine import create_engine, default_database_url
from smartspace_budget.ledger.integrity import IntegrityDifference, IntegrityReport
from smartspace_budget.ledger.ledger import Ledger
from smartspace_budget.ledger.migrate import upgrade

__all__ = [
    "IntegrityDifference",
    "IntegrityReport",
    "Ledger",
    "create_engine",
    "default_database_url",
    "upgrade",
]
