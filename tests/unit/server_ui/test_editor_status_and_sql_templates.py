"""Editor block runs record ``status`` in metadata.yaml; SQL templates per connection in the add-block dialog."""

from __future__ import annotations

import re
from pathlib import Path

import yaml


def _entry(project: Path, pipeline: str, block: str) -> dict:
    meta = yaml.safe_load((project / "pipelines" / pipeline / "metadata.yaml").read_text())
    return next(b for b in meta["blocks"] if b["uuid"] == block)


def _add(ui, pipeline: str, name: str, btype: str, *, language: str = "python", template: str = "generic", upstream=(), **extra):
    data = {"type": btype, "language": language, "template": template, "name": name, **extra}
    if upstream:
        data["upstream"] = list(upstream)
    return ui.post(f"/pipelines/{pipeline}/edit/blocks", data)


LOADER = (
    "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n"
    "@data_loader\ndef load(*args, **kwargs):\n    return {'n': 1}\n"
)


def test_editor_run_writes_executed_then_failed_and_the_cell_still_saves(ui, project):
    ui.post("/pipelines", {"name": "stat"})
    _add(ui, "stat", "load it", "data_loader")
    assert _entry(project, "stat", "load_it")["status"] == "not_executed"
    cell = ui.get("/pipelines/stat/edit/blocks/load_it").text
    base_hash = re.search(r'id="hash-load_it" value="([^"]+)"', cell).group(1)

    r = ui.post("/pipelines/stat/edit/blocks/load_it/run", {"content": LOADER, "base_hash": base_hash}, htmx=True)
    assert 'data-status="completed"' in ui.wait_job(r.text, "stat")
    entry = _entry(project, "stat", "load_it")
    assert entry["status"] == "executed" and entry["type"] == "data_loader"  # the rest of the entry is kept

    # the metadata.yaml write is not a change of the block file: saving with the hash from the run works
    new_hash = re.search(r'id="hash-load_it" value="([^"]+)"', r.text).group(1)
    broken = LOADER.replace("return {'n': 1}", "raise ValueError('no data today')")
    r = ui.post("/pipelines/stat/edit/blocks/load_it/run", {"content": broken, "base_hash": new_hash}, htmx=True)
    assert r.status_code == 200, r.text
    out = ui.wait_job(r.text, "stat")
    assert 'data-status="failed"' in out and "no data today" in out
    assert _entry(project, "stat", "load_it")["status"] == "failed"
    assert "no data today" in (project / "data_loaders" / "load_it.py").read_text()


def test_sql_templates_are_offered_and_set_the_block_configuration(ui, project):
    from dagsmith.blocks.templates import render_block_template

    ui.post("/pipelines", {"name": "sqlt"})
    page = ui.get("/pipelines/sqlt/edit").text
    offered = re.search(r"data-sql-templates='([^']+)'", page).group(1).replace("&#34;", '"')
    for btype in ("data_loader", "transformer", "data_exporter"):
        for provider in ("postgres", "duckdb", "bigquery"):
            assert f'"{provider}"' in re.search(rf'"{btype}": \[(.*?)\]\]', offered).group(1), (btype, provider)

    _add(ui, "sqlt", "load rows", "data_loader", language="sql", template="duckdb")
    _add(ui, "sqlt", "shape rows", "transformer", language="sql", template="postgres", upstream=["load_rows"])
    _add(ui, "sqlt", "write rows", "data_exporter", language="sql", template="bigquery", upstream=["shape_rows"], data_provider="postgres")

    loader_sql = (project / "data_loaders" / "load_rows.sql").read_text()
    assert loader_sql.startswith("-- load rows: a query on DuckDB") and loader_sql.rstrip().endswith("SELECT 1 AS one")
    assert loader_sql == render_block_template("data_loader", "sql", "duckdb", "load rows")
    transformer_sql = (project / "transformers" / "shape_rows.sql").read_text()
    assert transformer_sql.rstrip().endswith("SELECT *\nFROM {{ df_1 }}")
    exporter_sql = (project / "data_exporters" / "write_rows.sql").read_text()
    assert "BigQuery" in exporter_sql and exporter_sql.rstrip().endswith("SELECT *\nFROM {{ df_1 }}")

    loader = _entry(project, "sqlt", "load_rows")
    assert loader["language"] == "sql"
    assert loader["configuration"]["data_provider"] == "duckdb" and loader["configuration"]["data_provider_profile"] == "default"
    assert loader["configuration"]["data_provider_schema"] == "main" and loader["configuration"]["export_write_policy"] == "append"
    transformer = _entry(project, "sqlt", "shape_rows")["configuration"]
    assert transformer["data_provider"] == "postgres" and transformer["data_provider_schema"] == "public"
    exporter = _entry(project, "sqlt", "write_rows")["configuration"]
    # the template names the connection, whatever the Connection select said
    assert exporter["data_provider"] == "bigquery" and exporter["data_provider_profile"] == "default"
    assert exporter["data_provider_table"] == "write_rows" and exporter["export_write_policy"] == "replace"
    assert _entry(project, "sqlt", "write_rows")["upstream_blocks"] == ["shape_rows"]


def test_sql_generic_template_keeps_the_chosen_connection(ui, project):
    ui.post("/pipelines", {"name": "sqlg"})
    _add(ui, "sqlg", "raw query", "data_loader", language="sql", template="generic", data_provider="duckdb")
    config = _entry(project, "sqlg", "raw_query")["configuration"]
    assert config["data_provider"] == "duckdb" and config["data_provider_schema"] == "main"
    assert "SELECT 1 AS one" in (project / "data_loaders" / "raw_query.sql").read_text()
