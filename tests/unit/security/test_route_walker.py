"""Every route of the app, taken from its route table, with hostile names: 4xx and nothing written.

A route added later is walked without editing this file. Hostile values go into each path
parameter, each name-like query parameter and each name field of a form or JSON body.
"""

from __future__ import annotations

import re

import pytest

from .conftest import make_app, route_table, snapshot

#: as they appear in the URL, percent-encoded (the server decodes them before routing; a literal
#: ``..`` segment is resolved away by every client, browsers included, before it is sent)
HOSTILE_SEGMENTS = ["%2E%2E", "%2e%2E", "%2E", "a%5Cb", "a%00b", ".dagsmith", "%2Eenv", "linked"]
HOSTILE_VALUES = ["..", "../outside", "/abs/path", "a\\b", "a\x00b", ".dagsmith/secrets/key", "linked/metadata.yaml", "pipelines/../../outside"]
NAME_QUERY = ["pipeline_uuid", "block_uuid", "pipeline", "block", "path", "name"]


def _routes(app):
    for method, path, route in route_table(app):
        yield method, (path, route)


def _fill(entry, hostile: str | None, target: str | None) -> str:
    """The route's URL: ``hostile`` in the ``target`` parameter, harmless values in the others."""
    path, route = entry

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == target:
            return hostile
        convertor = route.param_convertors.get(name)
        return "1" if type(convertor).__name__ == "IntegerConvertor" else "p"

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", value, path)


@pytest.fixture
def walker(project, tmp_path):
    outside = tmp_path / "outside"
    (outside / "metadata.yaml").write_text("blocks: []\nuuid: linked\n")
    (project / "pipelines" / "linked").symlink_to(outside, target_is_directory=True)
    (project / ".dagsmith").mkdir(exist_ok=True)
    app, client, _ = make_app(project)
    with client:
        client.get("/pipelines")  # the CSRF cookie
        yield app, client, outside


def test_the_walker_sees_ui_and_api_routes(walker):
    app, _, _ = walker
    paths = {entry[0] for _, entry in _routes(app)}
    assert "/pipelines/{pipeline_uuid}/delete" in paths and "/api/pipelines/{pipeline_uuid}/variables" in paths
    assert len(paths) > 50


def test_hostile_path_parameters_get_4xx_and_write_nothing(walker, project):
    app, client, outside = walker
    token = client.cookies.get("dagsmith_csrf")
    before = snapshot(project, outside)
    checked = 0
    for method, route in _routes(app):
        names = [n for n, c in route[1].param_convertors.items() if type(c).__name__ != "IntegerConvertor"]
        for name in names:
            for hostile in HOSTILE_SEGMENTS:
                if hostile == "linked" and name != "pipeline_uuid":
                    continue  # a plain name; hostile only as a pipeline folder that links outside
                url = _fill(route, hostile, name)
                data = {"csrf_token": token, "confirm": hostile.replace("%2E", ".").replace("%2e", "."), "name": "x"}
                r = client.request(method, url, data=data if method != "GET" else None, headers={"X-CSRF-Token": token}, follow_redirects=False)
                assert 400 <= r.status_code < 500, f"{method} {url} -> {r.status_code}"
                checked += 1
    assert checked > 100
    assert snapshot(project, outside) == before


def test_hostile_query_names_get_4xx_or_are_ignored_and_write_nothing(walker, project):
    app, client, outside = walker
    before = snapshot(project, outside)
    key = (project / ".dagsmith" / "secrets" / "key")
    for method, route in _routes(app):
        if method != "GET":
            continue
        url = _fill(route, None, None)
        for query in NAME_QUERY:
            for hostile in HOSTILE_VALUES:
                r = client.get(url, params={query: hostile}, follow_redirects=False)
                assert r.status_code < 500, f"GET {url}?{query}={hostile!r} -> {r.status_code}"
                if key.exists():
                    assert key.read_text().strip() not in r.text
                assert "uuid: linked" not in r.text
    r = client.get("/files", params={"path": ".dagsmith/secrets/key"})
    assert r.status_code == 403
    assert client.get("/api/pipelines/p/blocks", params={"pipeline_uuid": "../x"}).status_code == 422
    assert snapshot(project, outside) == before


def test_hostile_body_names_never_write_outside_or_change_a_file(walker, project):
    """Names in bodies are cleaned (Mage's rule) or refused: new safe files may appear, nothing else changes."""
    app, client, outside = walker
    token = client.cookies.get("dagsmith_csrf")
    before = snapshot(project, outside)
    for method, route in _routes(app):
        if method == "GET":
            continue
        url = _fill(route, None, None)
        for hostile in HOSTILE_VALUES:
            form = {"csrf_token": token, "name": hostile, "path": hostile, "confirm": hostile, "value": "v", "content": "pwned",
                    "base_hash": "", "force": "1", "type": "data_loader", "language": "python", "upstream": hostile}
            r = client.request(method, url, data=form, headers={"X-CSRF-Token": token}, follow_redirects=False)
            assert r.status_code < 500, f"{method} {url} form {hostile!r} -> {r.status_code}"
            body = {"name": hostile, "secret": {"name": hostile, "value": "v", "pipeline_uuid": hostile},
                    "pipeline_schedule": {"name": hostile, "schedule_type": "api"}, "variables": {"x": 1},
                    "pipeline_run": {"variables": {}}, "backfill": {"name": hostile}}
            r = client.request(method, url, json=body, headers={"X-CSRF-Token": token}, follow_redirects=False)
            assert r.status_code < 500, f"{method} {url} json {hostile!r} -> {r.status_code}"
    after = snapshot(project, outside)
    changed = [k for k in before if after.get(k) != before[k]]
    # the routes were pointed at pipeline "p", so its metadata.yaml may gain cleaned blocks or variables
    assert [k for k in changed if k != "proj/pipelines/p/metadata.yaml"] == []
    import yaml

    from dagsmith.project.names import is_safe_name

    meta = yaml.safe_load((project / "pipelines" / "p" / "metadata.yaml").read_text())
    assert all(is_safe_name(b["uuid"], "block") for b in meta.get("blocks") or [])
    assert not any(k.startswith("outside") for k in set(after) - set(before))
    assert not any(".." in k or k.startswith("/") for k in after)
