"""Sign-in for the web UI and API: one user, a scrypt password hash, signed session cookies, CSRF.

Owner: server/ui. Key contracts:

* Auth is *configured* when a user and a password hash are known, from (first wins)
  ``DAGSMITH_AUTH_USER`` + ``DAGSMITH_AUTH_PASSWORD_HASH`` (a ``scrypt$…`` string made by
  ``python -m dagsmith.server.ui.auth USER``), ``DAGSMITH_AUTH_USER`` +
  ``DAGSMITH_AUTH_PASSWORD`` (hashed in memory at start), or ``<data dir>/auth.json``
  written by ``python -m dagsmith.server.ui.auth USER``. Clear passwords are never stored.
* Without auth the server only answers loopback clients; ``check_host_allowed`` refuses to
  listen on a non-loopback interface (``--host 0.0.0.0``) unless auth is configured.
* Sessions are ``user|sid|issued|seen|hmac`` cookies (HttpOnly, SameSite=Lax) signed with a
  key kept in ``<data dir>/secrets/ui_session_key`` (mode 0600): absolute and idle expiry,
  revoked for good by logout (``Sessions``). Failed sign-ins slow down and then lock a
  client out for a while (``LoginThrottle``).
* CSRF tokens are made and checked here (``csrf_token``, ``csrf_valid``) and required for
  every route by ``dagsmith.server.guard``: with sign-in the token is bound to the session; API calls authenticated by the session cookie need the
  ``X-CSRF-Token`` header even with JSON; API-trigger URLs carry their own token.
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

from dagsmith.settings import get

SESSION_COOKIE = "dagsmith_session"
CSRF_COOKIE = "dagsmith_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS: int = get("session_seconds")
IDLE_SECONDS: int = get("session_idle_seconds")
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
    user = get("auth_user")
    if user:
        stored = get("auth_password_hash")
        if stored:
            return AuthConfig(user, stored)
        clear = get("auth_password")
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
    from dagsmith.util.fs import atomic_write

    path = auth_file(data_dir)
    with atomic_write(path, perms=0o600) as handle:
        json.dump({"user": user, "password_hash": hash_password(password)}, handle)
    return path


def is_loopback(host: str) -> bool:
    """True for names that bind loopback only; ``''``, ``0``, ``0.0.0.0`` and ``::`` bind every interface."""
    if host == "localhost":
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
    env = get("session_key")
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
    """Signs, checks and revokes session cookies for one data folder.

    A cookie is ``user|sid|issued|seen|sig``. ``sid`` is random; ``issued`` bounds the
    session's life (``SESSION_SECONDS``, absolute); ``seen`` is renewed while the user is
    active and a session idle longer than ``IDLE_SECONDS`` ends. Logging out writes the sid
    to ``<data dir>/revoked_sessions.json`` (0600, pruned as entries expire), so a copied
    cookie stops working everywhere, in every server process sharing the folder. The CSRF
    token of a session is an HMAC of its sid (``csrf_for``).
    """

    def __init__(self, data_dir: Path) -> None:
        self.key = _session_key(data_dir)
        self.revoked_path = Path(data_dir) / "revoked_sessions.json"
        self._revoked: dict[str, float] = {}
        self._revoked_stamp: tuple[int, int] | None = None

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, user: str, *, now: float | None = None, sid: str | None = None, issued: int | None = None) -> str:
        now_i = int(now if now is not None else time.time())
        sid = sid or secrets.token_urlsafe(18)
        payload = f"{base64.urlsafe_b64encode(user.encode()).decode()}|{sid}|{issued if issued is not None else now_i}|{now_i}"
        return f"{payload}|{self._sign(payload)}"

    def parse(self, cookie: str | None, *, now: float | None = None) -> dict | None:
        """``{"user", "sid", "issued", "seen"}`` of a valid, live, unrevoked cookie; None otherwise."""
        if not cookie or cookie.count("|") != 4:
            return None
        user_b64, sid, issued, seen, sig = cookie.split("|")
        if not hmac.compare_digest(sig, self._sign(f"{user_b64}|{sid}|{issued}|{seen}")):
            return None
        now_f = now if now is not None else time.time()
        try:
            issued_i, seen_i = int(issued), int(seen)
            user = base64.urlsafe_b64decode(user_b64.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if now_f - issued_i > SESSION_SECONDS or now_f - seen_i > IDLE_SECONDS or seen_i > now_f + 60:
            return None
        if sid in self._load_revoked():
            return None
        return {"user": user, "sid": sid, "issued": issued_i, "seen": seen_i}

    def check(self, cookie: str | None, *, now: float | None = None) -> str | None:
        """The signed-in user of a cookie, or None (bad signature, expired, idle, revoked, malformed)."""
        info = self.parse(cookie, now=now)
        return info["user"] if info else None

    def renewed(self, info: dict, *, now: float | None = None) -> str | None:
        """A fresh cookie for an active session when its ``seen`` stamp is over a minute old, else None."""
        now_i = int(now if now is not None else time.time())
        if now_i - info["seen"] < 60:
            return None
        return self.issue(info["user"], now=now_i, sid=info["sid"], issued=info["issued"])

    def csrf_for(self, sid: str) -> str:
        return hmac.new(self.key, f"csrf|{sid}".encode(), hashlib.sha256).hexdigest()[:40]

    def revoke(self, cookie: str | None, *, now: float | None = None) -> bool:
        """End the session of ``cookie`` for good (logout). True when it was a valid session."""
        info = self.parse(cookie, now=now)
        if info is None:
            return False
        now_f = now if now is not None else time.time()
        revoked = {k: v for k, v in self._load_revoked().items() if v > now_f}
        revoked[info["sid"]] = info["issued"] + SESSION_SECONDS
        from dagsmith.util.fs import atomic_write

        with atomic_write(self.revoked_path, perms=0o600) as handle:
            json.dump(revoked, handle)
        self._revoked, self._revoked_stamp = revoked, None
        return True

    def _load_revoked(self) -> dict[str, float]:
        try:
            st = self.revoked_path.stat()
        except OSError:
            return self._revoked
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._revoked_stamp:
            try:
                self._revoked = {str(k): float(v) for k, v in json.loads(self.revoked_path.read_text(encoding="utf-8")).items()}
            except (OSError, ValueError, AttributeError):
                self._revoked = {}
            self._revoked_stamp = stamp
        return self._revoked


class LoginThrottle:
    """Failed sign-ins per client: each failure doubles the wait (0.5 s, 1 s, 2 s … up to 30 s).

    After ``LOCK_AFTER`` failures in ``WINDOW`` seconds the client gets 429 with
    ``Retry-After`` until the window has passed; a successful sign-in clears its record.
    """

    WINDOW = 15 * 60
    LOCK_AFTER = 10

    def __init__(self) -> None:
        import threading

        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(client, []) if now - t < self.WINDOW]
        if times:
            self._failures[client] = times
        else:
            self._failures.pop(client, None)
        return times

    def retry_after(self, client: str, *, now: float | None = None) -> int:
        """Seconds this client must wait before another attempt is even checked (0: go ahead)."""
        now = now if now is not None else time.time()
        with self._lock:
            times = self._recent(client, now)
            if len(times) >= self.LOCK_AFTER:
                return max(1, int(self.WINDOW - (now - times[-self.LOCK_AFTER])) + 1)
        return 0

    def failed(self, client: str, *, now: float | None = None) -> float:
        """Record a failure; returns how long to hold the answer back."""
        now = now if now is not None else time.time()
        with self._lock:
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times
            if len(self._failures) > 10_000:  # a flood of clients cannot grow memory without bound
                self._failures.pop(next(iter(self._failures)))
            return min(30.0, 0.5 * 2 ** (len(times) - 1))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


# ---------------------------------------------------------------- CSRF and cookies


def session_id(request) -> str | None:
    """The sid of the request's signed-in session (set by ``AuthMiddleware``), or None."""
    state = request.scope.get("state")
    return state.get("session_id") if isinstance(state, dict) else None


def _sessions_of(request) -> "Sessions | None":
    return getattr(request.app.state, "ui_sessions", None)


def csrf_token(request) -> str:
    """The CSRF token pages embed: bound to the session with sign-in, the double-submit cookie without.

    Without sign-in and without a usable cookie a new token is made and kept on
    ``request.state.csrf_new``; ``set_new_csrf_cookie`` sends it with the response.
    """
    sid = session_id(request)
    sessions = _sessions_of(request)
    if sid and sessions is not None:
        return sessions.csrf_for(sid)
    token = getattr(request.state, "csrf_new", None) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) < 16:
        token = secrets.token_urlsafe(24)
        request.state.csrf_new = token
    return token


def csrf_valid(request, sent: str | None) -> bool:
    """True when ``sent`` is this request's CSRF token (compared in constant time)."""
    if not sent:
        return False
    sid = session_id(request)
    sessions = _sessions_of(request)
    if sid and sessions is not None:
        return hmac.compare_digest(sent, sessions.csrf_for(sid))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and len(cookie) >= 16 and hmac.compare_digest(sent, cookie)


def set_new_csrf_cookie(request, response) -> None:
    """Send the double-submit cookie when ``csrf_token`` made a new token for this request."""
    new = getattr(request.state, "csrf_new", None)
    if new:
        response.set_cookie(CSRF_COOKIE, new, httponly=False, samesite="strict", path="/")


def set_session_cookies(request, response, sessions: "Sessions", user: str) -> None:
    """Sign ``user`` in on ``response``: the session cookie and the session's CSRF token."""
    cookie = sessions.issue(user)
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, max_age=SESSION_SECONDS, path="/")
    # the session's CSRF token, readable by scripts that signed in (send it as X-CSRF-Token)
    response.set_cookie(CSRF_COOKIE, sessions.csrf_for(sessions.parse(cookie)["sid"]), httponly=False, samesite="strict", secure=secure, path="/")


def clear_session_cookies(request, response) -> None:
    """Sign out: the session is revoked for good (even a kept copy of the cookie is dead) and both cookies dropped."""
    sessions = _sessions_of(request)
    if sessions is not None:
        sessions.revoke(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


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
    """ASGI middleware: loopback-only without auth; a live session required with auth (CSRF: ``server.guard``)."""

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
        info = self.sessions.parse(cookies.get(SESSION_COOKIE))
        if info is None:
            if path.startswith("/api/"):
                return await self._json(send, 401, "sign in first (POST /login) — this server requires a user")
            if scope.get("method") == "GET":
                from urllib.parse import quote

                target = path + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
                return await self._redirect(send, "/login?next=" + quote(target, safe=""))
            return await self._plain(send, 401, "Your session ended; sign in again.")
        scope["state"]["user"] = info["user"]
        scope["state"]["session_id"] = info["sid"]  # CSRF tokens are bound to it (server.guard)
        fresh = self.sessions.renewed(info)
        if fresh is None:
            return await self.app(scope, receive, send)
        secure = scope.get("scheme") == "https"
        cookie = f"{SESSION_COOKIE}={fresh}; HttpOnly; Path=/; SameSite=Lax; Max-Age={SESSION_SECONDS}" + ("; Secure" if secure else "")

        async def send_renewed(message):  # idle expiry slides while the user is active
            if message["type"] == "http.response.start" and path != "/logout":
                message = {**message, "headers": [*(message.get("headers") or []), (b"set-cookie", cookie.encode("latin-1"))]}
            await send(message)

        return await self.app(scope, receive, send_renewed)

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
