"""The demo: a realistic month of usage for one account (see :mod:`.seed`)."""

from smartspace_budget.demo.seed import DEMO_POLICY, PlannedCall, SeedResult, plan_month, seed_month

__all__ = ["DEMO_POLICY", "PlannedCall", "SeedResult", "plan_month", "seed_month"]
