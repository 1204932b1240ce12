"""Triggers declared in ``pipelines/<p>/triggers.yaml``, kept in sync with the database both ways.

File → DB (every scheduler tick, only for files whose mtime changed): each entry is
upserted by (pipeline, name) and marked ``in_code``; an in-code trigger that
disappeared from its file is switched off (its run history stays). Entries whose
``envs`` list does not contain the current environment are inactive.

DB → file: after the API changes an in-code trigger (or creates one in a pipeline
with ``settings.triggers.save_in_code_automatically``), ``write_triggers_yaml``
rewrites the file in Mage's format. dagsmith's additions (``timezone``,
``settings.catchup``) are written only when set, so Mage can still read the file.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagsmith.errors import ConfigError, ProjectError
from dagsmith.orchestration.scheduler.triggers import get_zone, validate_schedule
from dagsmith.util.clock import parse_iso

TRIGGERS_FILE = "triggers.yaml"
SCHEDULE_TYPES = ("time", "api", "event")


def triggers_path(project_root: Path, pipeline_uuid: str) -> Path:
    return Path(project_root) / "pipelines" / pipeline_uuid / TRIGGERS_FILE


def _parse_dt(value: Any, tz: str, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    elif hasattr(value, "year") and hasattr(value, "month"):
        dt = datetime(value.year, value.month, value.day)
    else:
        try:
            dt = parse_iso(str(value))
        except ValueError:
            raise ConfigError(f"{where}: start_time {value!r} is not a date-time", hint="write it as 2024-01-31 05:00:00 (ISO 8601)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=get_zone(tz))
    return dt.astimezone(timezone.utc)


def parse_trigger_entry(entry: Any, pipeline_uuid: str, where: str, env: str | None) -> dict[str, Any]:
    """One ``triggers.yaml`` entry → trigger fields (raises ``ConfigError`` naming the file and the trigger)."""
    if not isinstance(entry, dict) or not entry.get("name"):
        raise ConfigError(f"{where}: each trigger needs at least a name", hint="see the Mage triggers.yaml format: - name: daily\\n  schedule_type: time …")
    label = f"{where}: trigger {entry['name']!r}"
    settings = dict(entry.get("settings") or {})
    tz = str(entry.get("timezone") or settings.pop("timezone", None) or "UTC")
    try:
        get_zone(tz)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc.message}", hint=exc.hint) from None
    schedule_type = str(entry.get("schedule_type") or "time")
    if schedule_type not in SCHEDULE_TYPES:
        raise ConfigError(f"{label} has schedule_type {schedule_type!r}", hint="use time, api or event")
    interval = entry.get("schedule_interval")
    if schedule_type == "time":
        if not interval:
            raise ConfigError(f"{label} is a time trigger with no schedule_interval", hint="e.g. schedule_interval: '@daily' or '0 5 * * *'")
        try:
            validate_schedule(str(interval), tz)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc.message}", hint=exc.hint) from None
    envs = entry.get("envs") or []
    status = str(entry.get("status") or "inactive")
    if envs and env not in envs:
        status = "inactive"
    catchup = entry.get("catchup") or settings.get("catchup")
    if catchup is not None and catchup not in ("none", "latest", "all"):
        raise ConfigError(f"{label} has catchup {catchup!r}", hint="use none, latest or all")
    fields: dict[str, Any] = {
        "name": str(entry["name"]),
        "description": entry.get("description"),
        "schedule_type": schedule_type,
        "schedule_interval": str(interval) if interval else None,
        "start_time": _parse_dt(entry.get("start_time"), tz, label),
        "timezone": tz,
        "status": status,
        "variables": dict(entry.get("variables") or {}),
        "sla": entry.get("sla"),
        "settings": settings,
        "catchup": catchup,
        "envs": list(envs),
    }
    if entry.get("token"):
        fields["token"] = str(entry["token"])
    return fields


def read_trigger_file(path: Path, pipeline_uuid: str, env: str | None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A ``triggers.yaml`` → (fields of its valid entries, {trigger name: problem} of the others).

    One bad entry does not stop the others from syncing. A file that is not YAML at all is
    one problem under the name ``""``.
    """
    from dagsmith.project.yamlio import read_yaml

    try:
        data = read_yaml(path) or {}
    except (ConfigError, ProjectError) as exc:
        return [], {"": str(exc)}
    items = data.get("triggers") if isinstance(data, dict) else None
    if items is None and isinstance(data, list):
        items = data
    entries: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for i, entry in enumerate(items or []):
        try:
            entries.append(parse_trigger_entry(entry, pipeline_uuid, str(path), env))
        except ConfigError as exc:
            name = str(entry.get("name")) if isinstance(entry, dict) and entry.get("name") else f"entry {i + 1} (no name)"
            problems[name] = exc.message + (f" — {exc.hint}" if exc.hint else "")
    return entries, problems


class CodeTriggerSync:
    """Reads changed ``triggers.yaml`` files into the DB; remembers mtimes between ticks.

    ``problems[pipeline][trigger name]`` holds the entries that could not be read (shown on
    the triggers page, logged once per change on the server console); ``errors[pipeline]``
    is the same as one text per file.
    """

    def __init__(self, project_root: Path, env: str | None = None) -> None:
        self.project_root = Path(project_root)
        self.env = env
        self._mtimes: dict[str, float | None] = {}
        self.errors: dict[str, str] = {}
        self.problems: dict[str, dict[str, str]] = {}

    def forget(self, pipeline_uuid: str) -> None:
        self._mtimes.pop(pipeline_uuid, None)

    def sync(self, db, *, now: datetime) -> int:
        """Upsert triggers of changed files; returns the number of triggers created or changed."""
        base = self.project_root / "pipelines"
        if not base.is_dir():
            return 0
        changed = 0
        seen: set[str] = set()
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            uuid = folder.name
            path = folder / TRIGGERS_FILE
            mtime = path.stat().st_mtime if path.is_file() else None
            seen.add(uuid)
            if uuid in self._mtimes and self._mtimes[uuid] == mtime:
                continue
            problems: dict[str, str] = {}
            try:
                changed += self._sync_one(db, uuid, path if mtime is not None else None, now=now, problems=problems)
            except (ConfigError, ProjectError) as exc:
                problems[""] = str(exc)
            self._note(uuid, problems)
            self._mtimes[uuid] = mtime
        return changed

    def _note(self, uuid: str, problems: dict[str, str]) -> None:
        import logging

        if not problems:
            self.problems.pop(uuid, None)
            self.errors.pop(uuid, None)
            return
        self.problems[uuid] = problems
        self.errors[uuid] = "\n".join(problems.values())
        log = logging.getLogger("dagsmith.triggers")
        for message in problems.values():
            log.warning("%s (the file's other triggers are synced)", message)

    def _sync_one(self, db, uuid: str, path: Path | None, *, now: datetime, problems: dict[str, str] | None = None) -> int:
        from dagsmith.orchestration.store import repo

        entries: list[dict[str, Any]] = []
        bad: dict[str, str] = {}
        if path is not None:
            entries, bad = read_trigger_file(path, uuid, self.env)
            if problems is not None:
                problems.update(bad)
        changed = 0
        with db.session() as session:
            names = set(bad)  # a broken entry keeps its trigger as it was, rather than switching it off
            for fields in entries:
                names.add(fields["name"])
                existing = repo.find_trigger(session, uuid, fields["name"])
                token = fields.pop("token", None)
                if existing is None:
                    repo.create_trigger(session, uuid, fields.pop("name"), now=now, in_code=True, token=token, **fields)
                    changed += 1
                    continue
                updates = {k: v for k, v in fields.items() if k != "name" and getattr(existing, k) != v}
                if not existing.in_code:
                    updates["in_code"] = True
                if token and existing.token != token:
                    existing.token = token
                if updates:
                    repo.update_trigger(session, existing, now=now, **updates)
                    changed += 1
            if "" in bad:  # the file itself is unreadable: leave every trigger as it is
                return changed
            for trigger in repo.list_triggers(session, uuid):
                if trigger.in_code and trigger.name not in names and trigger.status == "active":
                    repo.update_trigger(session, trigger, now=now, status="inactive")
                    repo.audit(session, "trigger.removed_from_code", "trigger", trigger.id, {"pipeline_uuid": uuid}, now=now)
                    changed += 1
        return changed


def trigger_to_yaml_entry(trigger) -> dict[str, Any]:
    """A trigger row → a Mage ``triggers.yaml`` entry (dagsmith keys only when set)."""
    tz = trigger.timezone or "UTC"
    start = trigger.start_time
    if start is not None:
        start = start.astimezone(get_zone(tz)).replace(tzinfo=None)
    entry: dict[str, Any] = {
        "name": trigger.name,
        "schedule_type": trigger.schedule_type,
        "schedule_interval": trigger.schedule_interval,
        "start_time": start,
        "status": trigger.status,
        "variables": dict(trigger.variables or {}),
        "sla": trigger.sla,
        "settings": dict(trigger.settings or {}),
        "envs": list(trigger.envs or []),
    }
    if trigger.description:
        entry["description"] = trigger.description
    if tz != "UTC":
        entry["timezone"] = tz
    if trigger.catchup:
        entry["settings"]["catchup"] = trigger.catchup
    if trigger.last_enabled_at is not None:
        entry["last_enabled_at"] = trigger.last_enabled_at.replace(tzinfo=None)
    return entry


def write_triggers_yaml(project_root: Path, pipeline_uuid: str, triggers: list) -> Path:
    """Rewrite ``pipelines/<uuid>/triggers.yaml`` with the given in-code triggers."""
    from dagsmith.project.yamlio import write_yaml

    path = triggers_path(project_root, pipeline_uuid)
    write_yaml(path, {"triggers": [trigger_to_yaml_entry(t) for t in triggers]})
    return path


def save_in_code_automatically(project_root: Path, pipeline_uuid: str) -> bool:
    """The pipeline's (or project's) ``settings.triggers.save_in_code_automatically``."""
    from dagsmith.project.yamlio import read_yaml

    for path in (Path(project_root) / "pipelines" / pipeline_uuid / "metadata.yaml", Path(project_root) / "metadata.yaml"):
        try:
            data = read_yaml(path) if path.is_file() else None
        except ProjectError:
            continue
        if isinstance(data, dict):
            value = (((data.get("settings") or {}).get("triggers") or {}).get("save_in_code_automatically"))
            if value is None:
                value = ((((data.get("pipelines") or {}).get("settings") or {}).get("triggers") or {}).get("save_in_code_automatically"))
            if value is not None:
                return bool(value)
    return False
