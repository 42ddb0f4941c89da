"""The spending dashboard: view model, chart geometry, exports, templates and static files.

The HTTP routes live in :mod:`smartspace_budget.server.routes.dashboard`.
"""
