"""The HTTP ledger service (FastAPI): ``create_app`` builds it, ``serve`` runs it."""
