"""``docs/settings.md``: the table of every ``DAGSMITH_*`` variable, generated from the settings model.

``python -m dagsmith.settings.table --write`` rewrites the file; ``--check`` exits 1 when it
differs from the model (``tests/unit/core/test_settings.py`` runs the same check, so the
table never drifts from the code).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagsmith.settings import DEFAULTS, env_names

DOC = Path(__file__).resolve().parents[3] / "docs" / "settings.md"

HEADER = """# Settings (environment variables)

<!-- Generated from src/dagsmith/settings/model.py by `python -m dagsmith.settings.table --write`;
     do not edit by hand (tests/unit/core/test_settings.py fails when this file and the model differ). -->

dagsmith reads these variables when it needs them; an unset or empty variable takes the default.
A bad value stops the command that reads it with an error naming the variable and what it
allows (`dagsmith start` checks every variable before it starts anything). Values marked
*secret* are never printed. Project settings (`metadata.yaml`, `io_config.yaml`, `.env`) are
described in the README; Mage's `CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT` is honoured as in Mage.
"""


def _default(field: str) -> str:
    value = DEFAULTS[field]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def render() -> str:
    from dagsmith.settings.model import SECTIONS, Settings, allowed_values, is_secret

    lines = [HEADER.rstrip("\n")]
    for section, title in SECTIONS.items():
        lines += ["", f"## {title}", "", "| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
        for field, info in Settings.model_fields.items():
            if (info.json_schema_extra or {}).get("section") != section:
                continue
            names = env_names(field)
            variable = f"`{names[0]}`" + "".join(f" (or `{n}`)" for n in names[1:])
            meaning = (info.description or "") + (" *(secret)*" if is_secret(field) else "")
            lines.append(f"| {variable} | {_default(field)} | {allowed_values(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--write" in args:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC}")
        return 0
    if "--check" in args:
        current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
        if current != text:
            print(f"{DOC} differs from the settings model: run python -m dagsmith.settings.table --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
