"""Sign-in for the web UI and API: one user, a scrypt password hash, signed session cookies, CSRF.

Owner: server/ui. Key contracts:

* Auth is *configured* when a user and a password hash are known, from (first wins)
  ``DAGSMITH_AUTH_USER`` + ``DAGSMITH_AUTH_PASSWORD_HASH`` (a ``scrypt$…`` string made by
  ``python -m dagsmith.server.ui.auth USER``), ``DAGSMITH_AUTH_USER`` +
  ``DAGSMITH_AUTH_PASSWORD`` (hashed in memory at start), or ``<data dir>/auth.json``
  written by ``python -m dagsmith.server.ui.auth USER``. Clear passwords are never stored.
* Without auth the server only answers loopback clients; ``check_host_allowed`` refuses to
  listen on a non-loopback interface (``--host 0.0.0.0``) unless auth is configured.
* Sessions are ``user|expiry|hmac`` cookies (HttpOnly, SameSite=Lax) signed with a key kept
  in ``<data dir>/secrets/ui_session_key`` (mode 0600).
* CSRF: double submit. A random ``dagsmith_csrf`` cookie; every state-changing UI request
  must echo it in the ``X-CSRF-Token`` header (HTMX) or a ``csrf_token`` form field.
  API calls authenticated by the session cookie need the header too; API-trigger URLs
  carry their own token and stay open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SESSION_COOKIE = "dagsmith_session"
CSRF_COOKIE = "dagsmith_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A ``scrypt$n$r$p$salt$hash`` string (hashlib.scrypt, 16-byte salt, 32-byte key)."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    enc = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${enc(salt)}${enc(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches a ``hash_password`` string (constant-time compare)."""
    try:
        kind, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if kind != "scrypt":
            return False
        dec = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
        expected = dec(hash_b64)
        got = hashlib.scrypt(password.encode(), salt=dec(salt_b64), n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class AuthConfig:
    user: str
    password_hash: str


def auth_file(data_dir: Path) -> Path:
    return Path(data_dir) / "auth.json"


def load_auth(data_dir: Path) -> AuthConfig | None:
    """The configured user, or None when auth is off (see the module docstring for sources)."""
    user = os.environ.get("DAGSMITH_AUTH_USER")
    if user:
        stored = os.environ.get("DAGSMITH_AUTH_PASSWORD_HASH")
        if stored:
            return AuthConfig(user, stored)
        clear = os.environ.get("DAGSMITH_AUTH_PASSWORD")
        if clear:
            return AuthConfig(user, hash_password(clear))
    path = auth_file(data_dir)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("user") and str(data.get("password_hash", "")).startswith("scrypt$"):
                return AuthConfig(str(data["user"]), str(data["password_hash"]))
        except (OSError, ValueError):
            return None
    return None


def write_auth(data_dir: Path, user: str, password: str) -> Path:
    """Store a user and the hash of its password in ``<data dir>/auth.json`` (mode 0600)."""
    path = auth_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"user": user, "password_hash": hash_password(password)}, handle)
    os.replace(tmp, path)
    return path


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host_allowed(host: str, project_root: str | os.PathLike[str]) -> None:
    """Raise ``ConfigError`` when asked to listen beyond loopback without auth configured."""
    from dagsmith.errors import ConfigError
    from dagsmith.project.layout import data_dir

    if is_loopback(host):
        return
    if load_auth(data_dir(project_root)) is None:
        raise ConfigError(
            f"refusing to listen on {host} without sign-in: anyone on the network could run code in this project",
            hint="configure a user first: python -m dagsmith.server.ui.auth USER  (or set DAGSMITH_AUTH_USER and "
            "DAGSMITH_AUTH_PASSWORD_HASH), or keep the default --host 127.0.0.1",
        )


def _session_key(data_dir: Path) -> bytes:
    env = os.environ.get("DAGSMITH_SESSION_KEY")
    if env:
        return env.encode()
    path = Path(data_dir) / "secrets" / "ui_session_key"
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class Sessions:
    """Signs and checks session cookies for one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.key = _session_key(data_dir)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, user: str, *, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_SECONDS)
        payload = f"{base64.urlsafe_b64encode(user.encode()).decode()}|{expiry}"
        return f"{payload}|{self._sign(payload)}"

    def check(self, cookie: str | None, *, now: float | None = None) -> str | None:
        """The signed-in user of a cookie, or None (bad signature, expired, malformed)."""
        if not cookie or cookie.count("|") != 2:
            return None
        user_b64, expiry, sig = cookie.split("|")
        if not hmac.compare_digest(sig, self._sign(f"{user_b64}|{expiry}")):
            return None
        try:
            if int(expiry) < (now or time.time()):
                return None
            return base64.urlsafe_b64decode(user_b64.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None


def _open_path(path: str) -> bool:
    """Paths reachable without signing in."""
    if path.startswith("/static/") or path in ("/login", "/api/health", "/favicon.ico"):
        return True
    # Mage's API-trigger URLs carry their own token
    if path.startswith("/api/pipeline_schedules/"):
        parts = path.strip("/").split("/")
        return len(parts) >= 4 and parts[3] in ("pipeline_runs", "api_trigger") and (parts[3] == "api_trigger" or len(parts) == 5)
    return False


def _cookies(scope) -> dict[str, str]:
    from http.cookies import SimpleCookie

    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header means no cookies
                return {}
            return {k: m.value for k, m in jar.items()}
    return {}


def _header(scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == wanted:
            return value.decode("latin-1")
    return None


class AuthMiddleware:
    """ASGI middleware: loopback-only without auth; session required with auth; CSRF header for cookie-authenticated API writes."""

    def __init__(self, app, data_dir: Path) -> None:
        self.app = app
        self.data_dir = Path(data_dir)
        self.config = load_auth(self.data_dir)
        self.sessions = Sessions(self.data_dir) if self.config else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        scope.setdefault("state", {})
        if self.config is None:
            client = (scope.get("client") or ("", 0))[0]
            try:
                remote = not ipaddress.ip_address(client).is_loopback
            except ValueError:
                remote = False  # unix sockets, test clients
            if remote:
                return await self._plain(send, 403, "This dagsmith server has no sign-in configured, so it only answers on this machine (127.0.0.1).")
            scope["state"]["user"] = None
            return await self.app(scope, receive, send)
        if _open_path(path):
            return await self.app(scope, receive, send)
        cookies = _cookies(scope)
        user = self.sessions.check(cookies.get(SESSION_COOKIE))
        if user is None:
            if path.startswith("/api/"):
                return await self._json(send, 401, "sign in first (POST /login) — this server requires a user")
            if scope.get("method") == "GET":
                from urllib.parse import quote

                target = path + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
                return await self._redirect(send, "/login?next=" + quote(target, safe=""))
            return await self._plain(send, 401, "Your session ended; sign in again.")
        if path.startswith("/api/") and scope.get("method") in UNSAFE_METHODS:
            token = _header(scope, CSRF_HEADER.encode())
            if not token or not hmac.compare_digest(token, cookies.get(CSRF_COOKIE, "")):
                return await self._json(send, 403, "CSRF check failed: send the dagsmith_csrf cookie value in the X-CSRF-Token header")
        scope["state"]["user"] = user
        return await self.app(scope, receive, send)

    @staticmethod
    async def _plain(send, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _json(send, status: int, message: str) -> None:
        body = json.dumps({"error": {"code": status, "message": message, "type": "auth"}}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _redirect(send, location: str) -> None:
        await send({"type": "http.response.start", "status": 303, "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def main(argv: list[str] | None = None) -> int:
    """``python -m dagsmith.server.ui.auth USER [PROJECT]``: ask for a password, store its hash."""
    import getpass
    import sys

    from dagsmith.project.layout import data_dir

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m dagsmith.server.ui.auth USER [PROJECT]   (stores a scrypt hash in <data dir>/auth.json)")
        print("       python -m dagsmith.server.ui.auth --hash            (prints a hash for DAGSMITH_AUTH_PASSWORD_HASH)")
        return 0 if args else 2
    password = getpass.getpass("password: ")
    if len(password) < 8:
        print("error: use at least 8 characters", file=sys.stderr)
        return 2
    if args[0] == "--hash":
        print(hash_password(password))
        return 0
    path = write_auth(data_dir(args[1] if len(args) > 1 else "."), args[0], password)
    print(f"user {args[0]} saved in {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
