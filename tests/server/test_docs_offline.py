"""``/docs`` and ``/redoc`` load nothing from outside the service (issue 18: blank offline)."""

from __future__ import annotations

import re

import pytest
from tests.server.conftest import Service


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_doc_pages_load_only_the_services_own_assets(service: Service, page: str) -> None:
    html = await service.client.get(page)
    assert html.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assets = [s for s in sources if s.endswith((".js", ".css", ".png"))]
    assert assets
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from outside the service"
        answer = await service.client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000
    assert "cdn" not in html.text
    assert "fonts.googleapis" not in html.text
