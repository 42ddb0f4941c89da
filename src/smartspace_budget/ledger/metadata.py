"""The one SQLAlchemy ``MetaData`` every table of the ledger and the price book belongs to.

Constraint names follow a fixed convention so Alembic migrations are the same on SQLite and
PostgreSQL.
"""

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
