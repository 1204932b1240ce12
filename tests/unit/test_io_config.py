"""io_config.yaml: Jinja before YAML, env_var/.env, legacy format, secrets resolver, errors, redaction."""

from __future__ import annotations

import os
import textwrap

import pytest

from dagsmith.errors import ConfigError
from dagsmith.project import io_config
from dagsmith.project.io_config import (
    ConfigFileLoader,
    ConfigKey,
    load_profile,
    redact,
    redact_text,
    set_secret_resolver,
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    def make(text: str, env: str | None = None):
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        (root / "io_config.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        if env is not None:
            (root / ".env").write_text(env, encoding="utf-8")
        return root

    return make


def test_flat_profiles_and_mage_interface(project):
    root = project(
        """
        version: 0.1.1
        default:
          POSTGRES_DBNAME: ny_taxi
          POSTGRES_HOST: db
          POSTGRES_PORT: 5432
        dev:
          POSTGRES_HOST: devhost
        """
    )
    assert load_profile(root)["POSTGRES_DBNAME"] == "ny_taxi"
    loader = ConfigFileLoader(str(root / "io_config.yaml"), "dev")
    assert loader["POSTGRES_HOST"] == "devhost"
    assert loader.get(ConfigKey.POSTGRES_HOST) == "devhost"
    assert "POSTGRES_HOST" in loader and ConfigKey.POSTGRES_PORT not in loader
    assert loader.get("POSTGRES_PORT", 1) == 1


def test_unquoted_env_var_is_rendered_before_parsing(project, monkeypatch):
    monkeypatch.setenv("PG_PORT_X", "6543")
    monkeypatch.setenv("PG_HOST_X", "warehouse")
    root = project(
        """
        default:
          POSTGRES_PORT: {{env_var('PG_PORT_X')}}
          POSTGRES_HOST: {{ env_var('PG_HOST_X') }}
          POSTGRES_SCHEMA: {{ env_var('DAGSMITH_SURELY_MISSING', 'public') }}
        """
    )
    profile = load_profile(root)
    assert profile["POSTGRES_PORT"] == 6543
    assert profile["POSTGRES_HOST"] == "warehouse"
    assert profile["POSTGRES_SCHEMA"] == "public"


def test_env_var_resolving_to_nothing_names_profile_key_and_variable(project, monkeypatch):
    """A missing POSTGRES_DBNAME must not silently become the driver's default database."""
    monkeypatch.delenv("DAGSMITH_T_MISSING_DB", raising=False)
    monkeypatch.setenv("DAGSMITH_T_EMPTY_HOST", "")
    monkeypatch.setenv("DAGSMITH_T_USER", "alice")
    root = project(
        """
        dev:
          POSTGRES_DBNAME: "{{ env_var('DAGSMITH_T_MISSING_DB') }}"
          POSTGRES_HOST: {{ env_var('DAGSMITH_T_EMPTY_HOST') }}
          POSTGRES_USER: "{{ env_var('DAGSMITH_T_USER') }}"
          POSTGRES_PORT: {{ env_var('DAGSMITH_T_MISSING_PORT') or 5432 }}
          GOOGLE_SERVICE_ACC_KEY_FILEPATH: "{{ env_var('DAGSMITH_T_MISSING_KEY') }}"
        """
    )
    loader = ConfigFileLoader(str(root / "io_config.yaml"), "dev")
    assert loader["POSTGRES_USER"] == "alice"
    assert loader["POSTGRES_PORT"] == 5432  # `or` in the template still sees an empty value
    with pytest.raises(ConfigError) as missing:
        loader.get("POSTGRES_DBNAME")
    text = str(missing.value)
    assert "profile 'dev'" in text and "POSTGRES_DBNAME" in text and "DAGSMITH_T_MISSING_DB is not set" in text
    assert ".env" in missing.value.hint
    with pytest.raises(ConfigError, match="DAGSMITH_T_EMPTY_HOST is empty"):
        loader["POSTGRES_HOST"]
    with pytest.raises(ConfigError, match="key 'POSTGRES_DBNAME'"):
        load_profile(root, "dev")


def test_connectors_refuse_an_unset_env_var_before_connecting(project, monkeypatch):
    from dagsmith.io.duckdb import DuckDB
    from dagsmith.io.postgres import Postgres

    monkeypatch.delenv("DAGSMITH_T_MISSING_DB", raising=False)
    monkeypatch.delenv("DAGSMITH_T_MISSING_DUCK", raising=False)
    root = project(
        """
        dev:
          POSTGRES_DBNAME: "{{ env_var('DAGSMITH_T_MISSING_DB') }}"
          POSTGRES_HOST: 127.0.0.1
          DUCKDB_DATABASE: "{{ env_var('DAGSMITH_T_MISSING_DUCK') }}"
        """
    )
    loader = ConfigFileLoader(str(root / "io_config.yaml"), "dev")
    with pytest.raises(ConfigError, match="key 'POSTGRES_DBNAME'.*DAGSMITH_T_MISSING_DB"):
        Postgres.with_config(loader)
    with pytest.raises(ConfigError, match="key 'DUCKDB_DATABASE'.*DAGSMITH_T_MISSING_DUCK"):
        DuckDB.with_config(loader)
    assert not list(root.glob("*.duckdb"))  # nothing was created


def test_an_unset_default_schema_fails_only_calls_that_need_it(project, monkeypatch):
    """Mage's course exporter passes schema_name: an unset POSTGRES_SCHEMA must not stop it."""
    from dagsmith.io.postgres import Postgres

    monkeypatch.delenv("DAGSMITH_T_MISSING_SCHEMA", raising=False)
    root = project(
        """
        dev:
          POSTGRES_DBNAME: test
          POSTGRES_HOST: 127.0.0.1
          POSTGRES_SCHEMA: "{{ env_var('DAGSMITH_T_MISSING_SCHEMA') }}"
        """
    )
    conn = Postgres.with_config(ConfigFileLoader(str(root / "io_config.yaml"), "dev"))
    assert conn.dbname == "test"
    with pytest.raises(ConfigError, match="key 'POSTGRES_SCHEMA'.*DAGSMITH_T_MISSING_SCHEMA is not set"):
        conn.default_schema()
    # an explicit schema in the constructor keywords wins and needs no profile value
    named = Postgres.with_config(ConfigFileLoader(str(root / "io_config.yaml"), "dev"), schema="mage")
    assert named.default_schema() == "mage"


def test_dotenv_beside_the_project_is_loaded(project, monkeypatch):
    monkeypatch.delenv("DAGSMITH_T_DB", raising=False)
    root = project("default:\n  POSTGRES_DBNAME: \"{{ env_var('DAGSMITH_T_DB') }}\"\n", env="DAGSMITH_T_DB=from_dotenv\n")
    try:
        assert load_profile(root)["POSTGRES_DBNAME"] == "from_dotenv"
    finally:
        os.environ.pop("DAGSMITH_T_DB", None)


def test_json_value(project, monkeypatch):
    monkeypatch.setenv("CREDS_JSON", '{"user": "alice", "nested": {"port": 5433}}')
    root = project(
        """
        default:
          POSTGRES_USER: "{{ json_value(env_var('CREDS_JSON'), 'user') }}"
          POSTGRES_PORT: {{ json_value(env_var('CREDS_JSON'), 'nested.port') }}
        """
    )
    profile = load_profile(root)
    assert profile["POSTGRES_USER"] == "alice" and profile["POSTGRES_PORT"] == 5433


def test_legacy_verbose_format_is_flattened(project):
    root = project(
        """
        default:
          PostgreSQL:
            database: ny_taxi
            host: pg
            port: 5432
            user: root
            password: pw
          BigQuery:
            path_to_credentials: /keys/k.json
          AWS:
            access_key_id: AKIA
            secret_access_key: s3cr3t
            region: eu-west-1
            Redshift:
              database: dev
        """
    )
    p = load_profile(root)
    assert p["POSTGRES_DBNAME"] == "ny_taxi" and p["POSTGRES_HOST"] == "pg" and p["POSTGRES_PASSWORD"] == "pw"
    assert p["GOOGLE_SERVICE_ACC_KEY_FILEPATH"] == "/keys/k.json"
    assert p["AWS_REGION"] == "eu-west-1" and p["REDSHIFT_DBNAME"] == "dev"


def test_missing_profile_names_file_and_choices(project):
    root = project("default:\n  A: 1\ndev:\n  B: 2\n")
    with pytest.raises(ConfigError) as err:
        load_profile(root, "prod")
    message = str(err.value)
    assert "io_config.yaml" in message and "'prod'" in message and "default, dev" in message


def test_missing_key_names_profile_and_key(project):
    root = project("dev:\n  A: 1\n")
    loader = ConfigFileLoader(root / "io_config.yaml", "dev")
    with pytest.raises(KeyError) as err:
        loader["POSTGRES_HOST"]
    assert "POSTGRES_HOST" in str(err.value) and "'dev'" in str(err.value)


def test_malformed_yaml_reports_file_and_line(project):
    root = project("default:\n  A: 1\n  B: [unclosed\n  C: 3\n")
    with pytest.raises(ConfigError) as err:
        load_profile(root)
    assert "io_config.yaml:" in str(err.value)
    line = int(str(err.value).split("io_config.yaml:")[1].split(":")[0])
    assert 3 <= line <= 5


def test_template_syntax_error_reports_line(project):
    root = project("default:\n  A: 1\n  B: {{ env_var('X' }}\n")
    with pytest.raises(ConfigError) as err:
        load_profile(root)
    assert "io_config.yaml:3" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_profile(tmp_path)
    assert "io_config.yaml not found" in str(err.value)


def test_secrets_need_a_resolver_only_where_used(project):
    root = project(
        """
        default:
          POSTGRES_PASSWORD: "{{ mage_secret_var('pg_pw') }}"
          POSTGRES_HOST: db
        other:
          POSTGRES_HOST: other
        """
    )
    assert load_profile(root, "other")["POSTGRES_HOST"] == "other"
    loader = ConfigFileLoader(root / "io_config.yaml")
    assert loader["POSTGRES_HOST"] == "db"
    with pytest.raises(ConfigError) as err:
        loader["POSTGRES_PASSWORD"]
    assert "POSTGRES_PASSWORD" in str(err.value) and "dagsmith start" in str(err.value)

    set_secret_resolver({"pg_pw": "hunter2"}.__getitem__)
    try:
        assert load_profile(root)["POSTGRES_PASSWORD"] == "hunter2"
        assert ConfigFileLoader(root / "io_config.yaml")["POSTGRES_PASSWORD"] == "hunter2"
    finally:
        set_secret_resolver(None)


def test_secrets_never_in_repr_or_redacted_text(project):
    root = project(
        """
        default:
          POSTGRES_USER: alice
          POSTGRES_PASSWORD: "p@ss w0rd!"
          AWS_SECRET_ACCESS_KEY: abcdEFGH1234
          GOOGLE_SERVICE_ACC_KEY:
            type: service_account
            private_key: "-----BEGIN PRIVATE KEY-----\\nMIIEv\\n-----END PRIVATE KEY-----\\n"
          GOOGLE_SERVICE_ACC_KEY_FILEPATH: /keys/key.json
        """
    )
    loader = ConfigFileLoader(root / "io_config.yaml")
    shown = repr(loader) + str(loader)
    assert "p@ss w0rd!" not in shown and "abcdEFGH1234" not in shown and "MIIEv" not in shown
    assert "alice" in shown and "/keys/key.json" in shown
    assert redact(loader.config)["POSTGRES_PASSWORD"] == "******"
    text = redact_text("failed: postgresql://alice:p%40ss%20w0rd%21@h/db and p@ss w0rd!", loader.config)
    assert "p@ss" not in text and "p%40ss" not in text and "******" in text


def test_config_argument_and_enum_keys():
    loader = ConfigFileLoader(config={"DUCKDB_DATABASE": "w.duckdb"})
    assert loader[ConfigKey.DUCKDB_DATABASE] == "w.duckdb"
    assert f"{ConfigKey.DUCKDB_DATABASE}" == "DUCKDB_DATABASE"


def test_default_filepath_is_the_running_project(project, monkeypatch):
    root = project("default:\n  DUCKDB_SCHEMA: s\n")
    monkeypatch.setenv("DAGSMITH_REPO_PATH", str(root))
    assert ConfigFileLoader()["DUCKDB_SCHEMA"] == "s"


def test_mage_template_placeholders_render(project):
    # the io_config.yaml Mage writes on init: must parse as is
    root = project(
        """
        version: 0.1.1
        default:
          GOOGLE_SERVICE_ACC_KEY:
            type: service_account
            project_id: project-id
            private_key_id: key-id
            private_key: "-----BEGIN PRIVATE KEY-----\\nyour_private_key\\n-----END_PRIVATE_KEY"
            client_email: your_service_account_email
          GOOGLE_SERVICE_ACC_KEY_FILEPATH: "/path/to/your/service/account/key.json"
          GOOGLE_LOCATION: US
          POSTGRES_CONNECT_TIMEOUT: 10
          POSTGRES_DBNAME: postgres
          POSTGRES_SCHEMA: public
          POSTGRES_USER: username
          POSTGRES_PASSWORD: password
          POSTGRES_HOST: hostname
          POSTGRES_PORT: 5432
        """
    )
    profile = load_profile(root)
    assert profile["GOOGLE_SERVICE_ACC_KEY"]["type"] == "service_account"
    assert profile["POSTGRES_CONNECT_TIMEOUT"] == 10


def test_is_secret_key():
    assert io_config.is_secret_key("POSTGRES_PASSWORD")
    assert io_config.is_secret_key("GOOGLE_SERVICE_ACC_KEY")
    assert io_config.is_secret_key("AWS_SECRET_ACCESS_KEY")
    assert not io_config.is_secret_key("GOOGLE_SERVICE_ACC_KEY_FILEPATH")
    assert not io_config.is_secret_key("POSTGRES_HOST")


def test_listing_a_profile_shows_unset_env_vars_as_none_but_reading_them_fails(project, monkeypatch):
    monkeypatch.delenv("DAGSMITH_T_MISSING_DB", raising=False)
    root = project("default:\n  POSTGRES_DBNAME: \"{{ env_var('DAGSMITH_T_MISSING_DB') }}\"\n  POSTGRES_HOST: db\n")
    loader = ConfigFileLoader(str(root / "io_config.yaml"))
    assert dict(loader.items()) == {"POSTGRES_DBNAME": None, "POSTGRES_HOST": "db"}
    with pytest.raises(ConfigError, match="DAGSMITH_T_MISSING_DB is not set"):
        loader["POSTGRES_DBNAME"]


def test_io_config_alias_bomb_is_refused_naming_the_file(project):
    """io_config.yaml goes through the project's one YAML gate (alias budget, size limit)."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    ) + "default:\n  POSTGRES_HOST: localhost\n"
    root = project(bomb)
    with pytest.raises(ConfigError, match="io_config.yaml.*alias"):
        load_profile(root)


def test_io_config_syntax_error_names_the_line(project):
    root = project("default:\n  POSTGRES_HOST: [unclosed\n")
    with pytest.raises(ConfigError, match=r"io_config.yaml:\d+: malformed YAML") as info:
        load_profile(root)
    assert "KEY: value" in info.value.hint
