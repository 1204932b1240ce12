"""Issue 16 in the server: a cached block is ``cached`` on the run page and in the API; the run page
shows the command that replays a block locally, and that command gets the run's inputs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from html import unescape

from tests.projects import add_pipeline

CHECK = """
    import json

    @transformer
    def check(rows, *args, **kwargs):
        with open({out!r}, "a") as fh:
            fh.write(json.dumps({{"rows": rows, "execution_date": kwargs["execution_date"].isoformat()}}) + "\\n")
        raise ValueError("broken on purpose")
"""


def _finished(ui, run_url: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = ui.get(run_url).text
        if re.search(r'class="run-status" data-status="(failed|completed)"', page):
            return page
        time.sleep(0.2)
    raise AssertionError(f"run {run_url} did not finish")


def test_cached_status_and_replay_command(ui_worker, project, tmp_path):
    ui = ui_worker
    out = tmp_path / "seen.jsonl"
    log = tmp_path / "loads.log"
    add_pipeline(project, "p", [
        {"uuid": "load", "type": "data_loader",
         "code": f"@data_loader\ndef load(**kw):\n    open({str(log)!r}, 'a').write('load\\n')\n    return [3, 1, 2]\n"},
        {"uuid": "check", "upstream": ["load"], "code": CHECK.format(out=str(out))},
    ], extra={"cache": True})

    first = _finished(ui, ui.post("/pipelines/p/run").headers["location"])
    assert 'data-block="load" data-status="completed"' in first
    run_url = ui.post("/pipelines/p/run").headers["location"]
    page = _finished(ui, run_url)
    assert 'data-block="load" data-status="cached"' in page
    assert log.read_text().splitlines() == ["load"]  # the second run ran no loader code
    run_id = int(run_url.rsplit("/", 1)[1])
    api = ui.get(f"/api/pipeline_runs/{run_id}").json()["pipeline_run"]
    assert {b["block_uuid"]: b["status"] for b in api["block_runs"]} == {"load": "cached", "check": "failed"}

    command = unescape(re.search(r'<code class="mono" id="replay-command">(.*?)</code>', page).group(1))
    args = shlex.split(command)
    assert args[:2] == ["dagsmith", "run"] and args[-1] == "--pdb" and "--from-run" in args
    assert args[args.index("--block") + 1] == "check"
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    r = subprocess.run([sys.executable, "-m", "dagsmith", *args[1:-1]], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "broken on purpose" in r.stderr
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    assert seen[-1] == seen[-2] and seen[-1]["rows"] == [3, 1, 2]


def test_editor_shows_dagsmith_dev_runs(ui, project):
    """What `dagsmith dev` runs in its own process shows up in the pipeline's editor (polled fragment)."""
    import io

    from rich.console import Console

    from dagsmith.cli.dev import DevSession

    add_pipeline(project, "p", [
        {"uuid": "load", "type": "data_loader",
         "code": "import pandas as pd\n@data_loader\ndef f(**kw):\n    return pd.DataFrame({'fare': [7.5, 12.0]})\n"},
        {"uuid": "shape", "upstream": ["load"],
         "code": "@transformer\ndef f(df, **kw):\n    print('kept', len(df))\n    return df[df['fare'] > 10]\n"},
    ])
    editor = ui.get("/pipelines/p/edit").text
    assert 'id="dev-feed" class="dev-feed" data-seq="0" data-url="/pipelines/p/edit/dev"' in editor
    assert ui.get("/pipelines/p/edit/dev?seq=0").status_code == 204  # no dev loop yet: nothing to show

    session = DevSession(project, "p", Console(file=io.StringIO()))
    session.run(session.closure(session.unstored()), reason="first run")
    path = project / "transformers" / "shape.py"
    path.write_text(path.read_text().replace("print('kept'", "print('now kept'"))
    assert session.on_save([path]).ok
    r = ui.get("/pipelines/p/edit/dev?seq=0")
    assert r.status_code == 200
    html = r.text
    seq = re.search(r'data-seq="(\d+)"', html).group(1)
    assert 'data-block="shape" data-status="completed"' in html and "now kept 2" in html
    assert "saved transformers/shape.py" in html and "12.0" in html  # the preview of the new output
    assert 'data-block="load"' not in html  # the loader's stored output was used, not re-run
    assert ui.get(f"/pipelines/p/edit/dev?seq={seq}").status_code == 204

    path.write_text("@transformer\ndef f(df, **kw):\n    return df[\n")
    assert session.on_save([path]) is None
    html = ui.get(f"/pipelines/p/edit/dev?seq={seq}").text
    assert "transformers/shape.py:3" in html and "SyntaxError" in html and "invalid" in html
