"""The request boundary of the server: which hosts and origins may talk to it, CSRF, and the name gate.

Two pieces, so that every route — API or UI, present or added later — is covered without
per-route code:

* ``HostOriginGuard`` (ASGI middleware, outermost). The ``Host`` header must be a loopback
  name (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``[::1]``) or one of the allowed hosts
  (``dagsmith start --allowed-host``, ``DAGSMITH_ALLOWED_HOSTS``, the ``--host`` it binds);
  anything else is 400 — this is what defeats DNS rebinding, where a hostile page's own
  name resolves to 127.0.0.1. A state-changing request (any method but GET/HEAD/OPTIONS)
  whose ``Origin`` is not the server's own, or whose ``Sec-Fetch-Site`` says ``cross-site`` /
  ``same-site``, is 403. Requests without those headers (curl, scripts) pass this step.
* ``guard_route`` (a FastAPI dependency of the whole app). Every path parameter and every
  name-like query parameter passes ``project.names.check_name`` (422 otherwise, before the
  route runs). A state-changing request must have a JSON content type (which a cross-site
  form or ``no-cors`` fetch cannot send) or carry the CSRF token (``X-CSRF-Token`` header or
  ``csrf_token`` form field). With sign-in the token is derived from the session (an HMAC of
  its id), so a token from another session or a planted cookie is worthless; without
  sign-in it is the double-submit ``dagsmith_csrf`` cookie. API-trigger URLs are exempt:
  their own token is checked by the route, and a wrong one changes nothing.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Iterable

from starlette.requests import Request

# CSRF tokens are made and checked with sign-in (server.ui.auth); this module requires them on every route
from dagsmith.server.ui.auth import CSRF_FIELD, CSRF_HEADER, csrf_valid, session_id

ALLOWED_HOSTS_ENV = "DAGSMITH_ALLOWED_HOSTS"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_authenticated(endpoint):
    """Mark a route whose own token authenticates it (Mage's API-trigger URLs): no CSRF token needed."""
    endpoint.token_authenticated = True
    return endpoint

#: path parameter → kind of name for the gate (anything else: a plain name)
PARAM_KINDS = {"pipeline_uuid": "pipeline", "block_uuid": "block", "name": "secret", "block": "block", "pipeline": "pipeline"}
#: query parameters that are names of things on disk or in the DB
NAME_QUERY_PARAMS = ("pipeline_uuid", "block_uuid", "pipeline", "block")


# ---------------------------------------------------------------- hosts


def split_host(value: str) -> str:
    """The host part of a ``Host`` header (``[::1]:6789`` → ``::1``, ``Name:80`` → ``name``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_hosts(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Allowed host names from ``DAGSMITH_ALLOWED_HOSTS`` (comma list) and ``extra``; ``*.example.com`` wildcards."""
    from dagsmith.settings import get

    names = [h for h in (get("allowed_hosts") or "").split(",")] + list(extra)
    out = []
    for name in names:
        name = split_host(name) if not name.strip().startswith("*") else name.strip().lower()
        if name and name not in ("0.0.0.0", "::", "0") and name not in out:
            out.append(name)
    return tuple(out)


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    if not host:
        return False
    if is_loopback_host(host):
        return True
    for pattern in allowed:
        if pattern == "*":
            return True
        if pattern.startswith("*.") and (host.endswith(pattern[1:]) or host == pattern[2:]):
            return True
        if host == pattern:
            return True
    return False


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


class HostOriginGuard:
    """ASGI middleware: 400 for a foreign ``Host``, 403 for a cross-site state-changing request."""

    def __init__(self, app, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = configured_hosts(allowed_hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        raw_host = _header(scope, b"host") or ""
        host = split_host(raw_host)
        client = (scope.get("client") or ("", 0))[0]
        in_process = client == "testclient" and host == "testserver"  # Starlette's TestClient; never a socket peer
        if not in_process and not host_allowed(host, self.allowed):
            return await _answer(
                scope, send, 400,
                f"Host {raw_host[:100]!r} is not allowed: this server answers to localhost and 127.0.0.1 only",
                hint=f"open it as http://127.0.0.1, or allow the name with dagsmith start --allowed-host NAME ({ALLOWED_HOSTS_ENV})",
                kind="host_not_allowed",
            )
        if scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS:
            problem = cross_site_problem(scope, raw_host)
            if problem:
                return await _answer(scope, send, 403, problem, hint="send the request from the dagsmith page itself, or from a script without a browser", kind="cross_site")
        return await self.app(scope, receive, send)


def cross_site_problem(scope, raw_host: str) -> str | None:
    """Why a state-changing request looks cross-site, or None."""
    fetch_site = (_header(scope, b"sec-fetch-site") or "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = _header(scope, b"origin")
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return "cross-site request refused (Origin: null)"
    from urllib.parse import urlsplit

    try:
        netloc = urlsplit(origin.strip()).netloc.lower()
    except ValueError:
        return "cross-site request refused (malformed Origin)"
    if netloc != raw_host.strip().lower():
        return f"cross-site request refused (Origin {origin[:100]!r} is not this server)"
    return None


async def _answer(scope, send, status: int, message: str, *, hint: str | None = None, kind: str = "error") -> None:
    body = {"code": status, "message": message, "type": kind}
    if hint:
        body["hint"] = hint
    data = json.dumps({"error": body}).encode()
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# ---------------------------------------------------------------- CSRF


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def guard_route(request: Request) -> None:
    """App-wide dependency: the name gate for path/query names, then CSRF for state-changing requests."""
    from fastapi import HTTPException

    from dagsmith.project.names import UnsafeName, check_name, confined

    route = request.scope.get("route")
    convertors = getattr(route, "param_convertors", {}) or {}
    root = getattr(request.app.state, "project_root", None)

    def gate(name: str, value: str) -> None:
        kind = PARAM_KINDS.get(name, "name")
        check_name(value, kind)
        if kind == "pipeline" and root is not None:
            confined(root / "pipelines", value, kinds=["pipeline"])  # a pipeline folder linked out of the project

    for name, value in [*request.path_params.items(), *request.query_params.items()]:
        # ids and counts beyond 64 bits cannot name a row; the databases would raise on them
        if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            if not -(2**63) <= int(value) < 2**63:
                raise HTTPException(status_code=422, detail=f"{name} {str(value)[:30]} is out of range")
    try:
        for name, value in request.path_params.items():
            if isinstance(value, str) and type(convertors.get(name)).__name__ in ("StringConvertor", "NoneType"):
                gate(name, value)
        for name in NAME_QUERY_PARAMS:
            for value in request.query_params.getlist(name):
                if value != "":
                    gate(name, value)
    except UnsafeName as exc:
        raise HTTPException(status_code=422, detail=exc.message) from None
    if request.method in SAFE_METHODS:
        return
    if getattr(getattr(route, "endpoint", None), "token_authenticated", False):
        return
    if is_json(request.headers.get("content-type")) and not _cookie_session(request):
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent and (request.headers.get("content-type") or "").split(";")[0].strip().lower() in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.form()
        sent = str(form.get(CSRF_FIELD) or "")
    if not csrf_valid(request, sent):
        raise HTTPException(
            status_code=403,
            detail="CSRF check failed: send JSON (Content-Type: application/json) or the page's token "
            "(X-CSRF-Token header or csrf_token field); reload the page and try again",
        )


def _cookie_session(request) -> bool:
    """True when the request is authenticated by a session cookie (then JSON alone is not enough)."""
    return bool(session_id(request))
