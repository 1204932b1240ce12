"""Run notifications (Mage's ``notification_config``): a ``RunObserver`` that sends alerts.

Config lives in the project's ``metadata.yaml`` and/or the pipeline's (pipeline keys win)::

    notification_config:
      alert_on: [trigger_failure, trigger_passed_sla]   # or failure / success / passed_sla
      slack_config: {webhook_url: "{{ env_var('SLACK_WEBHOOK_URL') }}"}
      teams_config / discord_config / google_chat_config: {webhook_url: ...}
      webhook_config: {url: ..., headers: {Authorization: "Bearer {{ mage_secret_var('hook') }}"}}
      email_config:
        smtp_host: smtp.example.com
        smtp_port: 587
        smtp_user: alerts@example.com
        smtp_password: "{{ mage_secret_var('smtp_password') }}"
        smtp_mail_from: alerts@example.com
        to_emails: [oncall@example.com]
        smtp_starttls: true          # default; smtp_ssl: true for implicit TLS (port 465)
        smtp_ca_file: /path/ca.pem   # optional CA bundle; certificates are always verified
      message_templates:
        failure: {title: "...", details: "..."}   # str.format fields, see MESSAGE_FIELDS

Each message names the pipeline, the run, the status, the failed blocks with their errors
and a link to the run page. String values are rendered with Jinja at send time
(``env_var``, ``mage_secret_var``/``secret`` from dagsmith's secrets store), so secrets
stay out of the YAML; every text of an alert (title, message, the webhook's fields) passes the
secret masker (``project.masking``); error messages about sending never include URLs or passwords.
Sending never fails a run: problems are logged and kept in ``NotificationObserver.sent``.

``passed_sla``: give ``sla`` (seconds, the trigger's SLA); when the run is still going
that long after it started, one "SLA passed" alert goes out.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from dagsmith.engine.observer import NullObserver
from dagsmith.util.values import truthy

log = logging.getLogger("dagsmith.notifications")

FAILURE, SUCCESS, PASSED_SLA = "failure", "success", "passed_sla"
_ALIASES = {
    "trigger_failure": FAILURE, "failure": FAILURE, "failed": FAILURE,
    "trigger_success": SUCCESS, "success": SUCCESS, "completed": SUCCESS,
    "trigger_passed_sla": PASSED_SLA, "passed_sla": PASSED_SLA, "sla": PASSED_SLA, "sla_passed": PASSED_SLA,
}
#: fields usable in ``message_templates`` (``{pipeline_uuid}`` …)
MESSAGE_FIELDS = ("pipeline_uuid", "pipeline_run_id", "status", "execution_time", "error", "failed_blocks", "pipeline_run_url", "event")
CHAT_CHANNELS = {"slack_config": "text", "teams_config": "text", "google_chat_config": "text", "discord_config": "content"}


def merged_config(project_config: Mapping[str, Any] | None, pipeline_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Project ⊕ pipeline ``notification_config`` (pipeline keys override; nested dicts merged)."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in (project_config or {}).items()}
    for key, value in (pipeline_config or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        elif value not in (None, {}, []):
            out[key] = value
    return out


def alert_kinds(config: Mapping[str, Any]) -> set[str]:
    raw = config.get("alert_on")
    if raw is None:
        return {FAILURE}  # Mage's default
    if isinstance(raw, str):
        raw = [raw]
    return {_ALIASES.get(str(v).strip().lower(), str(v).strip().lower()) for v in raw}


class NotificationObserver(NullObserver):
    """Sends the alerts a pipeline's ``notification_config`` asks for, at the end of each run.

    ``project`` is a ``Project`` or a project path; ``pipeline_spec`` a ``PipelineSpec`` (or a
    pipeline uuid). ``base_url`` is where the web UI is reached (default ``DAGSMITH_BASE_URL``
    or http://127.0.0.1:6789); ``run_ref`` returns the run id the UI knows when it differs
    from the engine's (CLI runs recorded in the DB).
    """

    def __init__(
        self,
        project: Any,
        pipeline_spec: Any,
        base_url: str | None = None,
        *,
        sla: float | None = None,
        run_ref: Callable[[], Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        from dagsmith.project.pipelines import load_pipeline, load_project
        from dagsmith.project.specs import Project

        if not isinstance(project, Project):
            project = load_project(project)
        if isinstance(pipeline_spec, str):
            pipeline_spec = load_pipeline(project.root, pipeline_spec)
        self.project = project
        self.pipeline = pipeline_spec
        self.config = merged_config(project.notification_config, getattr(pipeline_spec, "notification_config", None))
        self.kinds = alert_kinds(self.config)
        from dagsmith.settings import get

        self.base_url = (base_url or get("base_url")).rstrip("/")
        self.sla = float(sla) if sla else None
        self.run_ref = run_ref
        self.timeout = timeout
        self.sent: list[dict[str, Any]] = []
        """One record per delivery attempt: ``{kind, channel, ok, error}``."""
        self._timer: threading.Timer | None = None
        self._done = threading.Event()
        self._run_id: Any = None
        self._started: datetime | None = None

    @property
    def enabled(self) -> bool:
        """True when at least one channel has somewhere to send to.

        Mage's project template ships ``slack_config``/``teams_config`` with
        ``webhook_url: "{{ env_var('MAGE_SLACK_WEBHOOK_URL') }}"``; with the variable unset the
        URL is empty and the channel is simply not configured: nothing is sent or logged.
        """
        return any(self._configured(key, value) for key, value in self.config.items())

    def _configured(self, key: str, value: Any) -> bool:
        if not isinstance(value, Mapping) or key not in (*CHAT_CHANNELS, "email_config", "webhook_config"):
            return False
        try:
            return _has_destination(key, self._render(value))
        except Exception:  # noqa: BLE001 - a value that cannot be rendered is reported when sending
            return True

    # ------------------------------------------------------------ observer hooks
    def on_run_start(self, *, run_id: Any = None, **kw: Any) -> None:
        self._run_id = run_id
        self._started = datetime.now(timezone.utc)
        if self.sla and PASSED_SLA in self.kinds and self.enabled:
            self._timer = threading.Timer(self.sla, self._sla_passed)
            self._timer.daemon = True
            self._timer.start()

    def on_run_end(self, *, run_id: Any = None, status: str = "", result: Any = None, **kw: Any) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()
        kind = {"failed": FAILURE, "completed": SUCCESS}.get(status)
        if kind and kind in self.kinds and self.enabled:
            self.notify(kind, run_id=run_id if run_id is not None else self._run_id, status=status, result=result)

    def _sla_passed(self) -> None:
        if not self._done.is_set():
            self.notify(PASSED_SLA, run_id=self._run_id, status="running", result=None)

    # ------------------------------------------------------------ messages
    def run_url(self, run_id: Any) -> str:
        ref = run_id
        if self.run_ref is not None:
            try:
                ref = self.run_ref() or run_id
            except Exception:  # noqa: BLE001 - a link is best effort
                ref = run_id
        return f"{self.base_url}/pipelines/{self.pipeline.uuid}/runs/{ref}"

    def fields(self, kind: str, *, run_id: Any, status: str, result: Any) -> dict[str, Any]:
        failed = []
        if result is not None:
            for uid, b in (getattr(result, "blocks", {}) or {}).items():
                if getattr(b, "status", "") == "failed":
                    failed.append({"block_uuid": uid, "error": getattr(b, "error", None) or ""})
        # a dynamic group's summary error repeats its children's: list the leaves first
        leaves = [f for f in failed if not _is_group_error(f["error"])] or failed
        execution = getattr(result, "execution_date", None) if result is not None else None
        return {
            "event": kind,
            "pipeline_uuid": self.pipeline.uuid,
            "pipeline_name": getattr(self.pipeline, "name", self.pipeline.uuid),
            "pipeline_run_id": str(run_id),
            "status": status,
            "execution_time": (execution or self._started or datetime.now(timezone.utc)).isoformat(),
            "failed_blocks": leaves,
            "error": leaves[0]["error"] if leaves else "",
            "pipeline_run_url": self.run_url(run_id),
        }

    def message(self, kind: str, f: Mapping[str, Any]) -> tuple[str, str]:
        """(title, text) of the alert, from ``message_templates`` when given."""
        what = {FAILURE: "failed", SUCCESS: "completed", PASSED_SLA: "passed its SLA"}.get(kind, kind)
        title = f"[dagsmith] pipeline {f['pipeline_uuid']} run {f['pipeline_run_id']} {what}"
        lines = [
            f"Pipeline: {f['pipeline_uuid']}",
            f"Run: {f['pipeline_run_id']}",
            f"Status: {f['status']}",
            f"Execution date: {f['execution_time']}",
        ]
        for b in f["failed_blocks"]:
            lines.append(f"Failed block: {b['block_uuid']}")
            if b["error"]:
                lines.append(f"Error: {b['error']}")
        if kind == PASSED_SLA and self.sla:
            lines.append(f"SLA: {self.sla:g} s")
        lines.append(f"Open the run: {f['pipeline_run_url']}")
        text = "\n".join(lines)
        custom = ((self.config.get("message_templates") or {}).get(kind) or {}) if isinstance(self.config.get("message_templates"), Mapping) else {}
        if custom:
            safe = _SafeFields({**f, "failed_blocks": ", ".join(b["block_uuid"] for b in f["failed_blocks"])})
            title = str(custom.get("title") or custom.get("summary") or title).format_map(safe)
            if custom.get("details"):
                text = str(custom["details"]).format_map(safe)
        return title, text

    # ------------------------------------------------------------ sending
    def notify(self, kind: str, *, run_id: Any, status: str, result: Any) -> list[dict[str, Any]]:
        """Send one alert on every configured channel; returns the delivery records."""
        from dagsmith.project.masking import MASKER

        # a block's error can carry a password (a connection string, a value it printed):
        # alerts leave dagsmith, so every text in them is masked like a log line (the masker asks
        # the secrets store again when its last look is older than 2 s)
        f = MASKER.mask_obj(self.fields(kind, run_id=run_id, status=status, result=result))
        title, text = (MASKER.mask(t) for t in self.message(kind, f))
        records = []
        for key, value in self.config.items():
            if not isinstance(value, Mapping):
                continue
            if key in CHAT_CHANNELS:
                send = lambda cfg, key=key: self._chat(key, cfg, title, text)  # noqa: E731
            elif key == "email_config":
                send = lambda cfg: self._email(cfg, title, text)  # noqa: E731
            elif key == "webhook_config":
                send = lambda cfg: self._webhook(cfg, {**f, "title": title, "message": text})  # noqa: E731
            else:
                continue
            rec = {"kind": kind, "channel": key.removesuffix("_config"), "ok": True, "error": None}
            try:
                rendered = self._render(value)
                if not _has_destination(key, rendered):
                    continue  # left empty (Mage's template with its env vars unset): not configured
                send(rendered)
            except Exception as exc:  # noqa: BLE001 - an alert must never break a run
                rec["ok"], rec["error"] = False, _safe_error(exc)
                log.warning("could not send the %s alert of pipeline %s to %s: %s", kind, self.pipeline.uuid, rec["channel"], rec["error"])
            records.append(rec)
        self.sent.extend(records)
        return records

    def _render(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: self._render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v) for v in value]
        if isinstance(value, str) and "{{" in value:
            import jinja2

            env = jinja2.Environment(autoescape=False)
            env.globals.update(
                env_var=lambda name, default=None: os.environ.get(name, default),
                mage_secret_var=self._secret,
                secret=self._secret,
            )
            return env.from_string(value).render()
        return value

    def _secret(self, name: str) -> str:
        from dagsmith.errors import ConfigError
        from dagsmith.project.io_config import get_secret_value

        try:
            return get_secret_value(name)
        except ConfigError:
            from dagsmith.orchestration.secrets import get_secret_value as from_store

            return from_store(name, self.project.root)

    def _post(self, url: str, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        import httpx

        if not url:
            raise ValueError("no URL configured")
        resp = httpx.post(url, json=payload, headers=dict(headers or {}), timeout=self.timeout)
        if resp.status_code >= 400:
            raise RuntimeError(f"the server answered HTTP {resp.status_code}")

    def _chat(self, key: str, cfg: Mapping[str, Any], title: str, text: str) -> None:
        field = CHAT_CHANNELS[key]
        body = f"*{title}*\n{text}" if key == "slack_config" else f"{title}\n{text}"
        self._post(str(cfg.get("webhook_url") or cfg.get("url") or ""), {field: body})

    def _webhook(self, cfg: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        self._post(str(cfg.get("url") or cfg.get("webhook_url") or ""), dict(payload), cfg.get("headers") or {})

    def _email(self, cfg: Mapping[str, Any], title: str, text: str) -> None:
        import smtplib  # here, not at the top: every `dagsmith run` imports this module
        import ssl
        from email.message import EmailMessage

        host = cfg.get("smtp_host")
        to = cfg.get("to_emails") or cfg.get("to") or []
        if isinstance(to, str):
            to = [t.strip() for t in to.split(",") if t.strip()]
        if not host or not to:
            raise ValueError("email_config needs smtp_host and to_emails")
        use_ssl = truthy(cfg.get("smtp_ssl", False))
        port = int(cfg.get("smtp_port") or (465 if use_ssl else 587))
        context = ssl.create_default_context(cafile=cfg.get("smtp_ca_file") or None)
        msg = EmailMessage()
        msg["Subject"] = title
        msg["From"] = cfg.get("smtp_mail_from") or cfg.get("smtp_user") or "dagsmith@localhost"
        msg["To"] = ", ".join(to)
        msg.set_content(text)
        timeout = float(cfg.get("smtp_timeout") or self.timeout)
        if use_ssl:
            server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(host, port, timeout=timeout)
        with server:
            server.ehlo()
            if not use_ssl and truthy(cfg.get("smtp_starttls", True), default=True):
                server.starttls(context=context)
                server.ehlo()
            if cfg.get("smtp_user") and cfg.get("smtp_password"):
                server.login(str(cfg["smtp_user"]), str(cfg["smtp_password"]))
            server.send_message(msg)


def _has_destination(key: str, cfg: Mapping[str, Any]) -> bool:
    """Whether a rendered channel config says where to send (a URL, or an SMTP host and recipients)."""
    def filled(value: Any) -> bool:
        return bool(value) and str(value).strip() not in ("", "None")

    if key == "email_config":
        return filled(cfg.get("smtp_host")) and filled(cfg.get("to_emails") or cfg.get("to"))
    return filled(cfg.get("webhook_url") or cfg.get("url"))


class _SafeFields(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _is_group_error(error: str) -> bool:
    return " dynamic children failed: " in (error or "")


def _safe_error(exc: BaseException) -> str:
    """A sending error without URLs or credentials (webhook URLs are secrets too)."""
    import smtplib

    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"{name}: the SMTP server refused the login (code {exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"{name}: the SMTP server closed the connection (check smtp_user/smtp_password and TLS settings)"
    if isinstance(exc, smtplib.SMTPException):
        return f"{name}: {getattr(exc, 'smtp_code', '')} {str(getattr(exc, 'smtp_error', b'') or '')[:200]}".strip()
    text = str(exc)
    if "://" in text:
        return f"{name} (details hidden: they contain the URL)"
    return f"{name}: {text}"[:300]


def notification_observer(project_root: str | os.PathLike[str], pipeline_uuid: str, **kw: Any) -> NotificationObserver | None:
    """A ``NotificationObserver`` when the project or pipeline configures any channel, else None."""
    obs = NotificationObserver(Path(project_root), pipeline_uuid, **kw)
    return obs if obs.enabled else None
