"""Property-based API test: schemathesis generates requests from /api/openapi.json (bounded example count).

Every operation must answer without a 5xx and with a body that matches the schema; the
project tree outside dagsmith's data folder must not change (hostile generated names never
reach the disk). ``DAGSMITH_SCHEMATHESIS_EXAMPLES`` raises the bound for a longer local run.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")
from hypothesis import HealthCheck, settings  # noqa: E402

from .conftest import make_app, snapshot  # noqa: E402

EXAMPLES = int(os.environ.get("DAGSMITH_SCHEMATHESIS_EXAMPLES") or 8)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from dagsmith.project.pipelines import add_block, create_pipeline
    from dagsmith.project.scaffold import init_project

    for name in ("DAGSMITH_DATABASE_URL", "DAGSMITH_AUTH_USER", "DAGSMITH_DATA_DIR", "DAGSMITH_ALLOWED_HOSTS"):
        os.environ.pop(name, None)
    root = init_project(tmp_path_factory.mktemp("schema") / "proj", example=False)
    create_pipeline(root, "p")
    add_block(root, "p", "load", "data_loader", content="@data_loader\ndef load(*a, **k):\n    return 1\n")
    app, _, _ = make_app(root)
    before = snapshot(root)
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app)
    assert snapshot(root) == before


def test_api_operations_never_fail_and_match_their_schema(api_schema):
    from hypothesis import given
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case):
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance, content_type_conformance])

        check()
