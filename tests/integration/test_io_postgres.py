"""PostgreSQL connector against a real server: types, atomic replace, append checks, upserts, errors."""

from __future__ import annotations

import threading

import pandas as pd
import psycopg
import pytest

from dagsmith.errors import ConnectorError, TerminalConnectorError
from dagsmith.io.postgres import Postgres
from dagsmith.project.io_config import ConfigFileLoader

pytestmark = pytest.mark.integration


def _pg(pg_profile, **kw):
    return Postgres.with_config(ConfigFileLoader(config=pg_profile), **kw)


def _column_types(dsn, schema, table):
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        ).fetchall()
    return dict(rows)


def test_export_creates_schema_and_typed_table_and_load_reads_it_back(pg_dsn, pg_profile, pg_schema):
    df = pd.DataFrame(
        {
            "VendorID": pd.array([1, None, 2], dtype="Int64"),
            "pickup": pd.to_datetime(["2021-01-01 00:30:10", None, "2021-01-02 10:00:00"]),
            "dropoff_tz": pd.to_datetime(["2021-01-01 01:00", "2021-01-01 02:00", None]).tz_localize("Europe/Paris"),
            "fare": [1.5, None, 3.25],
            "flag": ["N", None, "Y"],
            "ok": [True, False, True],
            "small": pd.array([1, 2, 3], dtype="int16"),
        }
    )
    with _pg(pg_profile) as pg:
        assert pg.export(df, pg_schema, "trips", if_exists="replace") == 3
        types = _column_types(pg_dsn, pg_schema, "trips")
        assert types == {
            "vendorid": "bigint",
            "pickup": "timestamp without time zone",
            "dropoff_tz": "timestamp with time zone",
            "fare": "double precision",
            "flag": "text",
            "ok": "boolean",
            "small": "smallint",
        }
        back = pg.load(f"SELECT * FROM {pg_schema}.trips ORDER BY fare NULLS LAST")
    assert str(back["vendorid"].dtype) == "Int64"
    assert back["vendorid"].isna().sum() == 1
    assert back.loc[0, "pickup"] == pd.Timestamp("2021-01-01 00:30:10")
    # the instant is kept: 01:00 Paris is 00:00 UTC
    assert back.loc[0, "dropoff_tz"] == pd.Timestamp("2021-01-01 00:00", tz="UTC")
    assert back["flag"].tolist()[0] == "N"


def test_load_limit_execute_table_exists_sample(pg_profile, pg_schema):
    with _pg(pg_profile) as pg:
        pg.export(pd.DataFrame({"n": range(50)}), pg_schema, "nums")
        assert len(pg.load(f"SELECT * FROM {pg_schema}.nums", limit=7)) == 7
        pg.execute(f"DELETE FROM {pg_schema}.nums WHERE n >= 10")
        assert pg.load(f"SELECT count(*) AS c FROM {pg_schema}.nums")["c"][0] == 10
        assert pg.table_exists(pg_schema, "nums") and not pg.table_exists(pg_schema, "nope")
        assert len(pg.sample(pg_schema, "nums", 3)) == 3


def test_replace_swaps_atomically_for_concurrent_readers(pg_dsn, pg_profile, pg_schema):
    with _pg(pg_profile) as pg:
        pg.export(pd.DataFrame({"n": range(1000)}), pg_schema, "t")
    seen: set[int] = set()
    errors: list[Exception] = []
    stop = threading.Event()

    def reader():
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            while not stop.is_set():
                try:
                    seen.add(c.execute(f'SELECT count(*) FROM "{pg_schema}".t').fetchone()[0])
                except Exception as exc:  # a reader must never fail (no missing table)
                    errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with _pg(pg_profile) as pg:
            for i in range(6):
                n = 200_000 if i % 2 == 0 else 1000
                pg.export(pd.DataFrame({"n": range(n)}), pg_schema, "t", if_exists="replace")
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert seen <= {1000, 200_000} and 200_000 in seen


def test_failed_replace_leaves_old_rows(pg_profile, pg_schema):
    with _pg(pg_profile) as pg:
        pg.export(pd.DataFrame({"a": [1, 2, 3]}), pg_schema, "keep")
        bad = pd.DataFrame({"a": range(10_000)})
        with pytest.raises(ConnectorError) as err:
            # the check fails half-way through COPY
            pg.export(bad, pg_schema, "keep", if_exists="replace", overwrite_types={"a": "integer CHECK (a < 5000)"})
        assert "keep" in str(err.value)
        assert pg.load(f"SELECT a FROM {pg_schema}.keep ORDER BY a")["a"].tolist() == [1, 2, 3]
        assert len(pg.load(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE nspname = '{pg_schema}'"
        )) == 1  # no leftover staging table


def test_fail_policy_refuses_existing_table(pg_profile, pg_schema):
    with _pg(pg_profile) as pg:
        pg.export(pd.DataFrame({"a": [1]}), pg_schema, "t", if_exists="fail")
        with pytest.raises(TerminalConnectorError) as err:
            pg.export(pd.DataFrame({"a": [2]}), pg_schema, "t", if_exists="fail")
        assert "already exists" in str(err.value) and f"{pg_schema}.t" in str(err.value)
        assert pg.load(f"SELECT a FROM {pg_schema}.t")["a"].tolist() == [1]


def test_append_checks_columns_before_writing(pg_profile, pg_schema):
    with _pg(pg_profile) as pg:
        pg.export(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), pg_schema, "t")
        with pytest.raises(TerminalConnectorError) as err:
            pg.export(pd.DataFrame({"a": [3], "zzz": [1]}), pg_schema, "t", if_exists="append")
        assert "zzz" in str(err.value) and "nothing was written" in str(err.value)
        with pytest.raises(TerminalConnectorError) as err:
            pg.export(pd.DataFrame({"a": ["not a number"], "b": ["z"]}), pg_schema, "t", if_exists="append")
        assert "a       bigint  text   ← changed: text values do not fit in bigint" in str(err.value)
        assert pg.load(f"SELECT count(*) AS c FROM {pg_schema}.t")["c"][0] == 2
        # fitting frames append, including a subset of columns in another order and int32 → bigint
        pg.export(pd.DataFrame({"b": ["z"], "a": pd.array([9], dtype="int32")}), pg_schema, "t", if_exists="append")
        pg.export(pd.DataFrame({"a": [10], "b": ["w"]}), pg_schema, "t", if_exists="append")
        assert pg.load(f"SELECT a FROM {pg_schema}.t ORDER BY a")["a"].tolist() == [1, 2, 9, 10]


def test_unique_constraints_update_and_ignore(pg_profile, pg_schema):
    with _pg(pg_profile) as pg:
        pg.export(pd.DataFrame({"id": [1, 2], "v": ["a", "b"]}), pg_schema, "u", unique_constraints=["id"])
        pg.export(
            pd.DataFrame({"id": [2, 3], "v": ["B", "c"]}), pg_schema, "u", if_exists="append",
            unique_constraints=["id"], unique_conflict_method="UPDATE",
        )
        pg.export(
            pd.DataFrame({"id": [3, 4], "v": ["IGNORED", "d"]}), pg_schema, "u", if_exists="append",
            unique_constraints=["id"], unique_conflict_method="IGNORE",
        )
        rows = pg.load(f"SELECT id, v FROM {pg_schema}.u ORDER BY id")
    assert rows.values.tolist() == [[1, "a"], [2, "B"], [3, "c"], [4, "d"]]


def test_wrong_user_names_host_and_profile_never_the_password(pg_server):
    profile = pg_server.profile()
    profile.update(POSTGRES_USER="no_such_role_x", POSTGRES_PASSWORD="Sup3r-Secret-Pw")
    pg = Postgres.with_config(ConfigFileLoader("/proj/io_config.yaml", "dev", config=profile))
    with pytest.raises(TerminalConnectorError) as err:
        pg.load("SELECT 1")
    message = str(err.value)
    assert pg_server.host in message and "'dev'" in message and "no_such_role_x" in message
    assert "Sup3r-Secret-Pw" not in message and "Sup3r-Secret-Pw" not in repr(pg)


def test_a_server_that_never_answers_fails_at_the_connect_timeout(pg_server):
    """POSTGRES_CONNECT_TIMEOUT reaches the driver: a peer that accepts TCP but never speaks
    fails the load instead of hanging it (without the timeout libpq would wait forever).
    How close to the timeout it fails: benchmarks/timing_claims.py."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever answers
    try:
        port = silent.getsockname()[1]
        profile = pg_server.profile()
        profile.update(POSTGRES_PORT=port, POSTGRES_PASSWORD="pw-should-not-show", POSTGRES_CONNECT_TIMEOUT=1)
        with pytest.raises(ConnectorError) as err:
            Postgres.with_config(ConfigFileLoader(config=profile)).load("SELECT 1")
    finally:
        silent.close()
    assert str(port) in str(err.value)
    assert "timeout" in err.value.message.lower()  # the driver's own words: it timed out, not refused
    assert "connect timeout 1s, POSTGRES_CONNECT_TIMEOUT" in err.value.hint
    assert "pw-should-not-show" not in str(err.value)


def test_unreachable_port_names_host_and_port_never_the_password(pg_server):
    from tests.fixtures.services import free_port

    profile = pg_server.profile()
    profile.update(POSTGRES_PORT=free_port(), POSTGRES_PASSWORD="pw-should-not-show", POSTGRES_CONNECT_TIMEOUT=2)
    with pytest.raises(ConnectorError) as err:
        Postgres.with_config(ConfigFileLoader(config=profile)).load("SELECT 1")
    assert str(profile["POSTGRES_PORT"]) in str(err.value)
    assert "pw-should-not-show" not in str(err.value)


def test_mage_block_style_with_io_config_file(pg_server, pg_schema, tmp_path, monkeypatch):
    from dagsmith.blocks.mage_imports import aliasing

    monkeypatch.setenv("DAGSMITH_T_PG_PORT", str(pg_server.port))
    (tmp_path / "io_config.yaml").write_text(
        "version: 0.1.1\n"
        "dev:\n"
        f"  POSTGRES_DBNAME: {pg_server.dbname}\n"
        f"  POSTGRES_SCHEMA: {pg_schema}\n"
        f"  POSTGRES_USER: {pg_server.user}\n"
        "  POSTGRES_PASSWORD: ''\n"
        f"  POSTGRES_HOST: {pg_server.host}\n"
        "  POSTGRES_PORT: {{ env_var('DAGSMITH_T_PG_PORT') }}\n"
    )
    with aliasing():
        from mage_ai.io.config import ConfigFileLoader as CFL
        from mage_ai.io.postgres import Postgres as MagePostgres

        config = CFL(str(tmp_path / "io_config.yaml"), "dev")
        with MagePostgres.with_config(config) as loader:
            loader.export(pd.DataFrame({"x": [1, 2]}), None, "from_block", index=False, if_exists="replace")
            out = loader.load(f"SELECT sum(x) AS s FROM {pg_schema}.from_block")
    assert out["s"][0] == 3


def test_fixture_starts_a_throwaway_cluster_when_no_server_answers():
    # what pg_server does on a machine without PostgreSQL at 127.0.0.1:5432
    from tests.fixtures.services import _pg_answers, _ThrowawayCluster

    cluster = _ThrowawayCluster()
    cluster.start()
    try:
        assert _pg_answers("127.0.0.1", cluster.port, "test")
        pg = Postgres(dbname="test", host="127.0.0.1", port=cluster.port)
        with pg:
            pg.export(pd.DataFrame({"a": [1, 2]}), "s", "t")
            assert pg.load("SELECT sum(a) AS s FROM s.t")["s"][0] == 3
    finally:
        cluster.stop()
    assert not _pg_answers("127.0.0.1", cluster.port, "test")


def test_unset_env_vars_in_io_config_are_refused_before_connecting(tmp_path, monkeypatch):
    """An env_var() that resolves to nothing never falls back to the driver's default host or user."""
    from tests.fixtures.services import free_port

    from dagsmith.errors import ConfigError
    from dagsmith.io.postgres import Postgres
    from dagsmith.project.io_config import ConfigFileLoader

    for name in ("PG_TEST_HOST", "PG_TEST_USER"):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "io_config.yaml"
    cfg.write_text(
        "version: 0.1.1\ndev:\n  POSTGRES_HOST: \"{{ env_var('PG_TEST_HOST') }}\"\n"
        f"  POSTGRES_PORT: {free_port()}\n  POSTGRES_USER: \"{{{{ env_var('PG_TEST_USER') }}}}\"\n"
        "  POSTGRES_PASSWORD: s3cret-pw\n  POSTGRES_DBNAME: test\n  POSTGRES_CONNECT_TIMEOUT: 2\n"
    )
    with pytest.raises(ConfigError) as info:
        Postgres.with_config(ConfigFileLoader(str(cfg), "dev"))
    text = str(info.value)
    assert "profile 'dev'" in text and "PG_TEST_" in text and "is not set" in text
    assert "s3cret-pw" not in text
