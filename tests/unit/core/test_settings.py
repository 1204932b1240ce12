"""The settings model (``dagsmith.settings``): one definition per ``DAGSMITH_*`` variable.

A bad value is an error naming the variable and what it allows, whichever module reads it;
unset variables keep their documented defaults; ``docs/settings.md`` is the model's table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dagsmith import settings
from dagsmith.errors import ConfigError
from dagsmith.settings import model, table

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("DAGSMITH_") or name in ("ENV", "CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT_ALL_TRIGGERS", "CONCURRENCY_CONFIG_BLOCK_RUN_LIMIT"):
            monkeypatch.delenv(name)


def test_the_light_defaults_are_the_model_defaults():
    built = model.Settings()
    for field in model.Settings.model_fields:
        assert settings.get(field) == model._plain(field, getattr(built, field)), field
        assert settings.DEFAULTS[field] == model.Settings.model_fields[field].default, field


def test_text_fields_are_plain_text_in_the_model():
    """``get`` returns these unvalidated, which is right only while the model does nothing to them."""
    from pydantic import SecretStr

    for field in settings.TEXT_FIELDS:
        info = model.Settings.model_fields[field]
        assert model._bare(info.annotation) in (str, SecretStr), field
        assert not info.metadata, field  # no bounds or patterns that get() would skip


def test_docs_table_is_generated_from_the_model():
    assert (REPO / "docs" / "settings.md").read_text(encoding="utf-8") == table.render(), (
        "docs/settings.md differs from the settings model: python -m dagsmith.settings.table --write"
    )


def test_every_dagsmith_variable_named_in_src_is_in_the_model():
    names = set()
    for path in (REPO / "src" / "dagsmith").rglob("*.py"):
        names |= set(re.findall(r"\bDAGSMITH_[A-Z][A-Z0-9_]*\b", path.read_text(encoding="utf-8")))
    known = {settings.env_name(f) for f in settings.DEFAULTS}
    assert names - known == set(), "add these variables to dagsmith/settings/model.py (and regenerate docs/settings.md)"


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("DAGSMITH_POLL_INTERVAL", "soon", "a number > 0"),
        ("DAGSMITH_POLL_INTERVAL", "-1", "a number > 0"),
        ("DAGSMITH_WORKER_CONCURRENCY", "2.5", "a whole number ≥ 1"),
        ("DAGSMITH_CATCHUP", "sometimes", "none, latest, all"),
        ("DAGSMITH_EXECUTOR", "ray", "local, dask"),
        ("DAGSMITH_EDITOR_KERNEL", "maybe", "1/0, true/false, yes/no, on/off"),
        ("DAGSMITH_MAX_YAML_BYTES", "8MB", "a whole number ≥ 1"),
        ("DAGSMITH_SESSION_SECONDS", "0", "a whole number ≥ 1"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_allows(monkeypatch, variable, value, allowed):
    field = variable[len("DAGSMITH_"):].lower()
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        settings.get(field)
    assert f"{variable}={value!r}" in err.value.message
    assert f"set {variable} to {allowed}" in err.value.hint and "docs/settings.md" in err.value.hint
    with pytest.raises(ConfigError) as err:  # the whole model says the same
        settings.load()
    assert f"{variable}={value!r}" in err.value.message


def test_every_bad_variable_is_listed_at_once_and_secrets_are_not_printed(monkeypatch):
    monkeypatch.setenv("DAGSMITH_HEARTBEAT_TIMEOUT", "forever")
    monkeypatch.setenv("DAGSMITH_GLOBAL_RUN_LIMIT", "many")
    with pytest.raises(ConfigError) as err:
        settings.load()
    assert "DAGSMITH_HEARTBEAT_TIMEOUT='forever'" in err.value.message and "DAGSMITH_GLOBAL_RUN_LIMIT='many'" in err.value.message
    assert model.validate_field("database_url", "postgresql://u:pw@h/db") == "postgresql://u:pw@h/db"
    assert model._bad("secret_key", "DAGSMITH_SECRET_KEY", "s3cr3t-value", "bad") == "environment variable DAGSMITH_SECRET_KEY=(hidden) is not valid (bad)"


def test_values_are_read_when_asked_and_parsed_by_type(monkeypatch):
    assert settings.get("heartbeat_timeout") == 30.0
    monkeypatch.setenv("DAGSMITH_HEARTBEAT_TIMEOUT", "3")
    assert settings.get("heartbeat_timeout") == 3.0
    monkeypatch.setenv("DAGSMITH_HEARTBEAT_TIMEOUT", "")  # empty is unset, as before
    assert settings.get("heartbeat_timeout") == 30.0
    monkeypatch.setenv("DAGSMITH_EXECUTOR", " Dask ")
    assert settings.get("executor") == "dask"
    monkeypatch.setenv("DAGSMITH_EDITOR_KERNEL", "off")
    assert settings.get("editor_kernel") is False
    monkeypatch.setenv("DAGSMITH_SECRET_KEY", "k" * 44)
    assert settings.get("secret_key") == "k" * 44


def test_mage_fallback_variables(monkeypatch):
    monkeypatch.setenv("ENV", "prod")
    monkeypatch.setenv("CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT_ALL_TRIGGERS", "3")
    assert settings.get("env") == "prod" and settings.get("global_run_limit") == 3
    assert model.load_settings().global_run_limit == 3 and model.load_settings().env == "prod"
    monkeypatch.setenv("DAGSMITH_ENV", "staging")
    monkeypatch.setenv("DAGSMITH_GLOBAL_RUN_LIMIT", "5")
    assert settings.get("env") == "staging" and settings.get("global_run_limit") == 5
    assert model.load_settings().global_run_limit == 5 and model.load_settings().env == "staging"


def test_orchestration_settings_come_from_the_model(monkeypatch, tmp_path):
    from dagsmith.orchestration.settings import OrchestrationSettings

    monkeypatch.setenv("DAGSMITH_WORKER_CONCURRENCY", "3")
    monkeypatch.setenv("DAGSMITH_RUN_RETENTION_DAYS", "0")
    monkeypatch.setenv("DAGSMITH_BLOCK_RUN_LIMIT", "0")
    s = OrchestrationSettings.from_env(tmp_path)
    assert (s.worker_concurrency, s.run_retention_days, s.block_run_limit, s.catchup) == (3, None, None, "latest")
    monkeypatch.setenv("DAGSMITH_CATCHUP", "ALL")
    assert OrchestrationSettings.from_env(tmp_path).catchup == "all"
    monkeypatch.setenv("DAGSMITH_SCHEDULER_INTERVAL", "fast")
    with pytest.raises(ConfigError, match="DAGSMITH_SCHEDULER_INTERVAL='fast'"):
        OrchestrationSettings.from_env(tmp_path)


def test_dagsmith_run_fails_clearly_on_a_bad_variable_and_help_never_imports_pydantic(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSMITH_")}
    code = "import sys; sys.argv=['dagsmith','--help']; from dagsmith.cli.front import main\ntry: main()\nexcept SystemExit: pass\nprint('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    project = tmp_path / "proj"
    subprocess.run([sys.executable, "-m", "dagsmith.cli.app", "init", str(project)], env=env, capture_output=True, check=True)
    env["DAGSMITH_MAX_YAML_BYTES"] = "lots"
    env["DAGSMITH_NO_HISTORY"] = "1"
    done = subprocess.run([sys.executable, "-m", "dagsmith.cli.app", "run", str(project), "example_pipeline"],
                          env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "DAGSMITH_MAX_YAML_BYTES='lots'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # dagsmith start checks every variable before it starts anything (no DB, no port)
    del env["DAGSMITH_MAX_YAML_BYTES"]
    env.update(DAGSMITH_SESSION_SECONDS="soon", DAGSMITH_DATA_DIR=str(tmp_path / "data"))
    started = subprocess.run([sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--port", "0"],
                             env=env, capture_output=True, text=True, timeout=120)
    said = " ".join((started.stdout + started.stderr).split())
    assert started.returncode != 0 and "DAGSMITH_SESSION_SECONDS='soon'" in said and "a whole number ≥ 1" in said
    assert not (tmp_path / "data" / "dagsmith.db").exists()


def test_the_quick_checks_are_the_model_bounds():
    import typing

    from annotated_types import Ge, Gt

    for field, info in model.Settings.model_fields.items():
        if field in settings.TEXT_FIELDS:
            assert field not in settings.CHECKS
            continue
        check = settings.CHECKS[field]
        kind = model._bare(info.annotation)
        if typing.get_origin(kind) is typing.Literal:
            assert check == ("choice", typing.get_args(kind)), field
        elif kind is bool:
            assert check == ("bool",), field
        else:
            (bound,) = [m for m in info.metadata if isinstance(m, (Gt, Ge))]
            op, value = (">", bound.gt) if isinstance(bound, Gt) else (">=", bound.ge)
            assert check == ({int: "int", float: "float"}[kind], op, value), field


@pytest.mark.parametrize("text", ["0", "1", "2", "10", "0.5", "1.0", "-1", "+3", "1e3", " 4", "4 ", "1_000", "٣",
                                  "true", "False", "OFF", "yes", "Y", "maybe", "", "local", " Dask ", "ray", "all", "x.5"])
def test_the_quick_parser_agrees_with_the_model(text):
    for field in settings.CHECKS:
        quick = settings.plain_value(field, text)
        try:
            expected = model.validate_field(field, text)
        except ConfigError:
            assert quick is settings._UNSURE, (field, text)  # only the model says no
            continue
        if quick is not settings._UNSURE:
            assert quick == expected and type(quick) is type(expected), (field, text, quick, expected)


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"DAGSMITH_WORKER_CONCURRENCY": "4", "DAGSMITH_EXECUTOR": "Dask", "DAGSMITH_EDITOR_KERNEL": "off", "ENV": "prod"},
        {"DAGSMITH_POLL_INTERVAL": "0.5", "DAGSMITH_DATABASE_URL": "postgresql://u:pw@h/db", "DAGSMITH_CATCHUP": ""},
        {"DAGSMITH_SESSION_SECONDS": "soon"},
        {"DAGSMITH_HEARTBEAT_TIMEOUT": "forever", "DAGSMITH_GLOBAL_RUN_LIMIT": "many"},
        {"CONCURRENCY_CONFIG_BLOCK_RUN_LIMIT": "-2"},
        {"DAGSMITH_MAX_BODY_BYTES": "   "},
        {"DAGSMITH_WORKER_CONCURRENCY": "1e1"},  # the quick parser is unsure, the model accepts it
        {"dagsmith_poll_interval": "soon"},  # pydantic-settings reads names case-insensitively
    ],
)
def test_the_start_check_fails_exactly_when_the_model_does_with_its_message(monkeypatch, variables):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        model.load_settings()
    except ConfigError as exc:
        with pytest.raises(ConfigError) as err:
            settings.check()
        assert (err.value.message, err.value.hint) == (exc.message, exc.hint)
    else:
        settings.check()


def test_the_start_check_of_plainly_valid_variables_does_not_import_pydantic():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSMITH_")}
    env.update(DAGSMITH_WORKER_CONCURRENCY="4", DAGSMITH_EXECUTOR="local", DAGSMITH_SECRET_KEY="k" * 44)
    code = "import sys; from dagsmith.settings import check; check(); print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    env["DAGSMITH_WORKER_CONCURRENCY"] = "four"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "DAGSMITH_WORKER_CONCURRENCY='four'" in bad.stderr
