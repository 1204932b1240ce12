"""The name gate (project.names) and the variables store's own confinement (issue 11 item 1, issue 12 item 1)."""

from __future__ import annotations


import pytest

from dagsmith.errors import ProjectError

from .conftest import snapshot

HOSTILE = ["..", "../x", "/abs/path", "a\\b", "a\x00b", ".hidden", "", "x" * 300, "a/../../b", "C:\\win"]


def test_clean_name_keeps_letters_of_every_script_and_never_makes_a_path():
    from dagsmith.project.names import clean_name

    assert clean_name("Load Taxi Data") == "load_taxi_data"
    assert clean_name("Données clients") == "données_clients"
    assert clean_name("顧客データ") == "顧客データ"
    assert "/" not in clean_name("a/b")


@pytest.mark.parametrize("bad", ["/srv/shared/v", "../../etc", "a/../b", "a\\b", "C:\\win", "a\x00b", " /x"])
def test_clean_name_refuses_a_display_name_that_reads_as_a_path(bad):
    """Issue 11 item 1: a path given as a name is refused (exit 2 / 4xx), not cleaned into another name."""
    from dagsmith.project.names import UnsafeName, clean_name

    with pytest.raises(UnsafeName) as caught:
        clean_name(bad)
    assert "plain name" in caught.value.hint


@pytest.mark.parametrize("bad", HOSTILE)
def test_check_name_refuses_names_that_leave_their_folder(bad):
    from dagsmith.project.names import UnsafeName, check_name

    with pytest.raises(UnsafeName):
        check_name(bad, "pipeline")


def test_block_uuids_may_nest_but_not_escape():
    from dagsmith.project.names import UnsafeName, check_name

    assert check_name("sub/load", "block") == "sub/load"
    assert check_name("child:0", "block") == "child:0"
    for bad in ("/abs/path", "../x", "sub/../../x", "sub//x"):
        with pytest.raises(UnsafeName):
            check_name(bad, "block")


def test_project_functions_refuse_hostile_pipeline_names(project):
    from dagsmith.project.pipelines import delete_pipeline, load_pipeline, read_pipeline_raw, set_pipeline_variables

    before = snapshot(project, project.parent / "outside")
    for bad in ("..", "../outside", str(project.parent / "outside"), "p/../..", "a\x00"):
        for call in (lambda: delete_pipeline(project, bad), lambda: set_pipeline_variables(project, bad, {"x": 1}),
                     lambda: read_pipeline_raw(project, bad), lambda: load_pipeline(project, bad)):
            with pytest.raises(ProjectError):
                call()
    assert snapshot(project, project.parent / "outside") == before


def test_a_pipeline_folder_linked_out_of_the_project_is_refused(project):
    from dagsmith.project.pipelines import list_pipelines, set_pipeline_variables

    outside = project.parent / "outside"
    (outside / "metadata.yaml").write_text("blocks: []\nuuid: linked\n")
    (project / "pipelines" / "linked").symlink_to(outside, target_is_directory=True)
    assert "linked" not in list_pipelines(project)
    with pytest.raises(ProjectError, match="symbolic link"):
        set_pipeline_variables(project, "linked", {"pwned": 1})
    assert "pwned" not in (outside / "metadata.yaml").read_text()


def test_add_block_with_an_absolute_or_parent_name_writes_nothing(project):
    from dagsmith.project.pipelines import add_block

    before = snapshot(project, project.parent / "outside")
    for bad in ("/abs/path", "../x", str(project.parent / "outside" / "v")):
        with pytest.raises(ProjectError):
            add_block(project, "p", bad, "data_loader", content="x = 1\n")
    assert snapshot(project, project.parent / "outside") == before


def test_cli_blocks_new_with_an_absolute_name_exits_2_and_writes_nothing(project, tmp_path):
    import subprocess
    import sys

    target = tmp_path / "outside" / "v"
    before = snapshot(project, tmp_path / "outside")
    proc = subprocess.run([sys.executable, "-m", "dagsmith", "blocks", "new", str(project), "p", str(target)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is an absolute path" in proc.stdout + proc.stderr
    assert not target.exists() and not target.with_suffix(".py").exists()
    assert snapshot(project, tmp_path / "outside") == before


@pytest.mark.parametrize("block", ["/abs/path", "../x", "../../outside/v", "a/../../../x", ".hidden", "a\x00b"])
def test_variables_store_never_writes_outside_its_folder(tmp_path, block):
    from dagsmith.data.store import UnsafeStorePath, VariableStore

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    data = tmp_path / "data"
    store = VariableStore(data)
    name = block.replace("/abs/path", str(victim)) if block == "/abs/path" else block
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeStorePath):
        store.write_outputs("pipe", "run1", name, [{"a": 1}], multi=False)
    with pytest.raises(UnsafeStorePath):
        store.read_outputs("pipe", "run1", name)
    assert snapshot(tmp_path) == before
    assert victim.stat().st_mode & 0o777 != 0o700  # the store did not take the folder over


def test_variables_store_refuses_a_block_folder_linked_outside(tmp_path):
    from dagsmith.data.store import UnsafeStorePath, VariableStore

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    store = VariableStore(tmp_path / "data")
    store.write_outputs("pipe", "run1", "ok", [1], multi=False)
    (store.variables_dir("pipe") / "run1" / "linked").symlink_to(victim, target_is_directory=True)
    with pytest.raises(UnsafeStorePath):
        store.write_outputs("pipe", "run1", "linked", [{"a": 1}], multi=False)
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]
    with pytest.raises(UnsafeStorePath):
        store.write_outputs("../pipe", "run1", "ok", [1], multi=False)
    with pytest.raises(UnsafeStorePath):
        store.write_outputs("pipe", "../run1", "ok", [1], multi=False)


def test_a_pipeline_yaml_naming_a_block_with_an_absolute_path_never_runs(project, tmp_path):
    """Issue 12 item 1: a block uuid '/srv/shared/v' in metadata.yaml made every run replace that folder."""
    from dagsmith.engine.runner import run_pipeline
    from dagsmith.errors import ValidationError

    victim = tmp_path / "outside" / "shared"
    victim.mkdir()
    (victim / "data.csv").write_text("a,b\n1,2\n")
    meta = project / "pipelines" / "p" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("uuid: load", f"uuid: {victim}"))
    before = snapshot(tmp_path / "outside")
    with pytest.raises(ValidationError, match="not a safe block name"):
        run_pipeline(str(project), "p")
    assert snapshot(tmp_path / "outside") == before
    assert oct(victim.stat().st_mode & 0o777) != "0o700"


def test_file_browser_paths(project):
    from dagsmith.project.names import UnsafeName, project_file

    data = project / ".dagsmith"
    data.mkdir(exist_ok=True)
    assert project_file(project, "io_config.yaml") == (project / "io_config.yaml").resolve()
    assert project_file(project, ".env") == (project / ".env").resolve()
    for bad in (".dagsmith/secrets/key", "../outside/keep.txt", "/etc/passwd", "utils/../../x", "a\\b", "a\x00b", ".git/config"):
        with pytest.raises(UnsafeName):
            project_file(project, bad, forbidden=[data])
    custom = project / "mydata"
    custom.mkdir()
    with pytest.raises(UnsafeName, match="dagsmith's own data"):
        project_file(project, "mydata/dagsmith.db", forbidden=[custom])
