"""The editor's output is masked like every other output: a secret set after the server started,
printed by a block that runs in the editor kernel (a child process), and a password that reaches a
block through ``.env`` and ``io_config.yaml``, never show in the cell, its error or traceback."""

from __future__ import annotations

import re
import time

from .conftest import make_app, set_secret_in_other_process

SECRET = "late-editor-secret-5b2e"
ENV_PASSWORD = "envpass-editor-41c7"

LEAKY = (
    "import os\n"
    "from mage_ai.data_preparation.shared.secrets import get_secret_value\n"
    "from mage_ai.io.config import ConfigFileLoader\n"
    "from mage_ai.settings.repo import get_repo_path\n\n\n"
    "@data_loader\n"
    "def load(*args, **kwargs):\n"
    "    print('the value is', get_secret_value('late_pw'))\n"
    "    config = ConfigFileLoader(os.path.join(get_repo_path(), 'io_config.yaml'), 'default')\n"
    "    print('config', dict(config.items()))\n"
    "    print('item', config['POSTGRES_PASSWORD'])\n"
    "    import logging; logging.getLogger('block').warning('logged %s', get_secret_value('late_pw'))\n"
    "    raise ValueError('could not connect with ' + config['POSTGRES_PASSWORD'] + ' or ' + get_secret_value('late_pw'))\n"
)


def _run_in_editor(client, pipeline: str, block: str) -> tuple[list[str], str]:
    client.get("/login")
    csrf = client.cookies.get("dagsmith_csrf")
    html = client.post(f"/pipelines/{pipeline}/edit/blocks/{block}/run", data={"csrf_token": csrf}, headers={"HX-Request": "true"}).text
    job = re.search(r'data-job="([0-9a-f]+)"', html).group(1)
    since, lines, deadline = 0, [], time.monotonic() + 90
    while time.monotonic() < deadline:
        state = client.get(f"/pipelines/{pipeline}/edit/jobs/{job}/poll?since={since}&wait=5").json()
        lines += state["lines"]
        since = state["next"]
        if state["done"]:
            page = client.get(f"/pipelines/{pipeline}/edit/jobs/{job}").text
            return lines, state.get("html", "") + page
    raise AssertionError("the editor job did not finish")


def _leaky_project(project):
    (project / ".env").write_text(f"POSTGRES_PASSWORD={ENV_PASSWORD}\n")
    io = (project / "io_config.yaml").read_text()
    if "POSTGRES_PASSWORD" not in io:
        (project / "io_config.yaml").write_text(io + "  POSTGRES_PASSWORD: \"{{ env_var('POSTGRES_PASSWORD') }}\"\n")
    (project / "data_loaders" / "load.py").write_text(LEAKY)


def _check(project, lines: list[str], html: str) -> None:
    shown = "\n".join(lines) + html
    assert "the value is ******" in shown, shown[-3000:]
    assert "item ******" in shown and "could not connect with ******" in shown, shown[-3000:]
    assert SECRET not in shown and ENV_PASSWORD not in shown
    data = project / ".dagsmith"
    written = [p for p in data.rglob("*") if p.is_file() and p.suffix != ".db" and "secrets" not in p.parts and p.name != "key"]
    leaking = [str(p) for p in written if SECRET.encode() in p.read_bytes() or ENV_PASSWORD.encode() in p.read_bytes()]
    assert leaking == []


def test_editor_kernel_masks_a_secret_set_after_start_and_io_config_passwords(project, monkeypatch):
    monkeypatch.setenv("DAGSMITH_EDITOR_KERNEL", "1")
    _leaky_project(project)
    app, client, _rt = make_app(project)
    with client:
        assert client.get("/pipelines/p/edit").status_code == 200  # the server (and its masker) is up
        set_secret_in_other_process(project, "late_pw", SECRET)  # after start, by another process
        lines, html = _run_in_editor(client, "p", "load")
        assert app.state.ui_jobs.kernel is not None and app.state.ui_jobs.kernel.pid  # it ran in the kernel
    _check(project, lines, html)


def test_editor_in_server_threads_masks_too(project, monkeypatch):
    monkeypatch.setenv("DAGSMITH_EDITOR_KERNEL", "0")
    _leaky_project(project)
    app, client, _rt = make_app(project)
    with client:
        assert client.get("/pipelines/p/edit").status_code == 200
        set_secret_in_other_process(project, "late_pw", SECRET)
        lines, html = _run_in_editor(client, "p", "load")
    _check(project, lines, html)
