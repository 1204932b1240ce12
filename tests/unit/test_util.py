"""dagsmith.util: the one atomic write, the one ISO parser, the one config flag reading."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from dagsmith.util.clock import parse_iso, utcnow
from dagsmith.util.fs import atomic_write, write_bytes_atomic, write_text_atomic
from dagsmith.util.values import truthy


def test_atomic_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(target.parent) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path) -> None:
    target = tmp_path / "data.csv"
    target.write_text("a,b\n1,2\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as fh:
            fh.write("half")
            raise RuntimeError("the writer died")
    assert target.read_text() == "a,b\n1,2\n"
    assert os.listdir(tmp_path) == ["data.csv"]


def test_secret_files_are_written_private(tmp_path) -> None:
    target = tmp_path / "auth.json"
    write_text_atomic(target, "{}", perms=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_parse_iso_reads_z_offsets_and_keeps_naive_values_naive() -> None:
    assert parse_iso(" 2024-01-31T05:00:00Z ") == datetime(2024, 1, 31, 5, tzinfo=timezone.utc)
    assert parse_iso("2024-01-31").tzinfo is None
    with pytest.raises(ValueError):
        parse_iso("31/01/2024")
    assert abs(utcnow() - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert utcnow().tzinfo is timezone.utc


@pytest.mark.parametrize("text", ["1", "true", "Yes", " ON "])
def test_truthy_words_switch_a_flag_on(text: str) -> None:
    assert truthy(text) is True and truthy(text, default=False) is True


@pytest.mark.parametrize("text", ["", "0", "false", "No", "off"])
def test_falsy_words_switch_a_flag_off_even_when_it_defaults_on(text: str) -> None:
    assert truthy(text, default=True) is False


def test_other_text_means_the_callers_default() -> None:
    assert truthy("enabled") is False  # a typo never switches something on
    assert truthy("enabled", default=True) is True  # nor a protection (STARTTLS) off
    assert truthy(True) and not truthy(0) and truthy(1)


def test_project_files_keep_a_shared_mode_and_new_ones_follow_the_umask(tmp_path) -> None:
    from dagsmith.project.yamlio import write_text_atomic as write_project_file

    shared = tmp_path / "pipelines" / "p" / "metadata.yaml"
    shared.parent.mkdir(parents=True)
    shared.write_text("blocks: []\n")
    os.chmod(shared, 0o664)  # a project shared with a group
    write_project_file(shared, "blocks: []\nname: p\n")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
    assert shared.read_text() == "blocks: []\nname: p\n"

    old = os.umask(0o022)
    try:
        fresh = tmp_path / "transformers" / "clean.py"
        fresh.parent.mkdir()
        write_project_file(fresh, "x = 1\n")
        secrets = tmp_path / "io_config.yaml"
        write_project_file(secrets, "default: {}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # readable by the team, like an editor's file
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600  # connection secrets start private
