"""The editor's block run shows a SQL block's rendered SQL (placeholders and values) and its first rows."""

from __future__ import annotations

from tests.projects import add_pipeline
from tests.unit.server_ui.conftest import project, ui  # noqa: F401 - fixtures


def test_editor_run_shows_rendered_sql_and_rows(ui, project):  # noqa: F811
    (project / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  DUCKDB_DATABASE: wh.duckdb\n")
    add_pipeline(project, "sqlui", [
        {"uuid": "load", "type": "data_loader",
         "code": "import pandas as pd\n@data_loader\ndef f(**kw):\n    return pd.DataFrame({'zone': ['north', 'south']})\n"},
        {"uuid": "pick", "type": "transformer", "language": "sql", "upstream": ["load"],
         "configuration": {"data_provider": "duckdb", "data_provider_profile": "default", "data_provider_schema": "s"},
         "code": "SELECT zone FROM {{ df_1 }}\nWHERE zone <> '{{ env }}'\n"},
    ])
    r = ui.post("/pipelines/sqlui/edit/blocks/pick/run", {"with_upstream": "1"}, htmx=True)
    out = ui.wait_job(r.text, "sqlui")
    assert 'data-status="completed"' in out, out
    assert "Rendered SQL" in out and "WHERE zone &lt;&gt; $1" in out and "$1 = &#39;dev&#39;" in out
    assert "north" in out and "south" in out
