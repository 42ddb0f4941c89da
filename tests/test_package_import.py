"""``import smartspace_budget`` leaves pydantic and the components for their first use
(issue 20), and the lazy names still resolve to the real objects."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_leaves_pydantic_and_the_components_for_later() -> None:
    code = (
        "import sys, smartspace_budget\n"
        "heavy = [m for m in ('pydantic', 'smartspace_budget.models', 'sqlalchemy', 'tiktoken',"
        " 'smartspace_budget.pricing') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from smartspace_budget import BudgetCheck, PricingEngine\n"
        "from smartspace_budget.models import BudgetCheck as model\n"
        "from smartspace_budget.pricing import PricingEngine as engine\n"
        "assert BudgetCheck is model and PricingEngine is engine\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
