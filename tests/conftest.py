"""Shared pytest set-up: service fixtures live in tests/fixtures/services.py."""

import os

import pytest

pytest_plugins = ["tests.fixtures.services"] if os.path.exists(
    os.path.join(os.path.dirname(__file__), "fixtures", "services.py")
) else []


#: Test modules that never touch pandas, so the pandas-3 pass of scripts/test.sh leaves them out
#: (``--pandas-dependent``): they ran on pandas 2 in the main pass and pandas 3 cannot change them.
#: A module belongs here only if none of its tests enters a pandas function in-process nor starts a
#: Python child (a CLI run, a server, a worker process, a multiprocessing child), as measured with
#: ``python -m pytest -p tests.pandas_use -m "not integration and not e2e" tests/unit tests/compat``
#: (writes .pandas_use.tsv). Modules not listed, new ones included, always run on pandas 3.
PANDAS_FREE = frozenset({
    "tests/compat/test_template_placeholders.py",  # its non-integration test only renders templates
    "tests/unit/core/test_importable_race.py",
    "tests/unit/core/test_project.py",
    "tests/unit/core/test_yaml_limits.py",
    "tests/unit/engine/test_dynamic.py",  # blocks return lists and dicts
    "tests/unit/engine/test_executor_type.py",
    "tests/unit/engine/test_hooks.py",
    "tests/unit/engine/test_plan.py",
    "tests/unit/engine/test_unsupported_blocks.py",
    # orchestration units run a fake engine (tests/unit/orchestration/conftest.py) over SQLAlchemy
    "tests/unit/orchestration/test_claim_limits.py",
    "tests/unit/orchestration/test_orch_api.py",
    "tests/unit/orchestration/test_orch_backfill_dates.py",
    "tests/unit/orchestration/test_orch_contact.py",
    "tests/unit/orchestration/test_orch_limits_retention.py",
    "tests/unit/orchestration/test_orch_scheduler_loop.py",
    "tests/unit/orchestration/test_orch_triggers.py",
    "tests/unit/orchestration/test_orch_worker.py",
    "tests/unit/orchestration/test_schedule_describe.py",
    "tests/unit/orchestration/test_store_contract.py",
    "tests/unit/orchestration/test_trigger_file_errors.py",
    # HTTP boundary: routes, names, auth, OpenAPI (no frame is built)
    "tests/unit/security/test_boundary.py",
    "tests/unit/security/test_openapi_schemathesis.py",
    "tests/unit/security/test_route_walker.py",
    "tests/unit/server_ui/test_auth.py",
    "tests/unit/server_ui/test_dag.py",
    "tests/unit/server_ui/test_first_hour_pages.py",
    "tests/unit/server_ui/test_insights.py",
    "tests/unit/sql/test_render.py",
    "tests/unit/test_dag_graph.py",
    "tests/unit/test_io_config.py",
    "tests/unit/test_io_drift_and_partitions.py",  # pyarrow tables only
    "tests/unit/test_layers.py",
    "tests/unit/test_notifications_config.py",
    "tests/unit/test_util.py",
})


def pytest_addoption(parser):
    parser.addoption(
        "--pandas-dependent", action="store_true", default=False,
        help="run only the tests whose code can meet pandas (the pandas-3 pass; see PANDAS_FREE in tests/conftest.py)",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--pandas-dependent"):
        return
    keep, drop = [], []
    for item in items:
        rel = item.nodeid.split("::", 1)[0]
        (drop if rel in PANDAS_FREE else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Each test gets its own dagsmith data dir unless it sets one; no history DB from CLI runs leaks."""
    monkeypatch.delenv("DAGSMITH_DATA_DIR", raising=False)
    monkeypatch.delenv("DAGSMITH_REPO_PATH", raising=False)
    yield
    # A server or worker started in-process registers a process-wide secrets resolver.
    import sys

    io_config = sys.modules.get("dagsmith.project.io_config")
    if io_config is not None:
        io_config.set_secret_resolver(None)
