"""/api/docs in headless Chromium with every request outside 127.0.0.1 refused: Swagger UI still renders."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_api_docs_render_with_no_network(tmp_path, start_server, page):
    from dagsmith.project.scaffold import init_project

    server = start_server(init_project(tmp_path / "proj", example=True))
    outside: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(server.url) or url.startswith("data:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(server.url + "/api/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    assert page.locator(".opblock").count() > 10
    assert "/api/pipeline_schedules/{trigger_id}/pipeline_runs/{token}" in page.content()
    assert outside == [] and page.errors.items == []
