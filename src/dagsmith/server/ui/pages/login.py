"""Sign-in pages: ``/`` (to the pipeline list), ``GET/POST /login`` and ``POST /logout``.

The password check, the throttle and the cookies are ``server.ui.auth``'s; without a
configured user ``/login`` only forwards to where the person was going.
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dagsmith.server.ui import auth
from dagsmith.server.ui.pages.common import page_router, render

router, get, post = page_router()


@get("/")
def home() -> Response:
    return RedirectResponse("/pipelines", status_code=303)


@get("/login")
def login_page(request: Request, next: str = "/pipelines", error: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=next if next.startswith("/") and not next.startswith("//") else "/pipelines", error=error)


@post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    config = request.app.state.ui_auth
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    target = str(form.get("next") or "/pipelines")
    if not target.startswith("/") or target.startswith("//"):
        target = "/pipelines"
    if config is None:
        return RedirectResponse(target, status_code=303)
    throttle = request.app.state.ui_login_throttle
    client = request.client.host if request.client else "?"
    wait = throttle.retry_after(client)
    if wait:
        return render(request, "login.html", status_code=429, headers={"Retry-After": str(wait)}, next=target,
                      error=f"Too many failed sign-ins from this address; try again in {wait // 60 + 1} min.")
    ok = hmac.compare_digest(user.encode(), config.user.encode()) & auth.verify_password(password, config.password_hash)
    if not ok:
        await asyncio.sleep(throttle.failed(client))  # each failure doubles the wait
        return render(request, "login.html", status_code=401, next=target, error="Wrong user or password.")
    throttle.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    auth.set_session_cookies(request, response, request.app.state.ui_sessions, user)
    return response


@post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    auth.clear_session_cookies(request, response)  # the cookie is dead even if someone kept a copy
    return response
