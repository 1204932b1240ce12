"""Probe a real ``dagsmith start`` server the way an attacker would, and print what each attack got.

Usage: ``.venv/bin/python scripts/security_probe.py`` (builds a throw-away project in a temp
folder, starts the server on a free loopback port, runs every probe, stops it). Each line is
``<probe>: <answer> <verdict>``; the verdict says whether the boundary held. The same probes
are the tests of tests/unit/security (run on every commit); this script is for a person who
wants to see them against a real process.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

RESULTS: list[tuple[str, str, bool]] = []


def wait_healthy(client: httpx.Client, seconds: float = 180) -> None:
    """Poll /api/health until the server answers 200 (a loaded machine starts the server slowly)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.get("/api/health").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


def report(name: str, answer: str, held: bool) -> None:
    RESULTS.append((name, answer, held))
    print(f"{'HELD ' if held else 'BROKEN'}  {name}: {answer}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        if ".dagsmith" in path.parts or "__pycache__" in path.parts:
            continue
        if path.is_file():
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="dagsmith_probe_"))  # no "-": cleaned names keep the path
    outside = work / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("do not touch")
    project = work / "proj"
    dagsmith = str(Path(sys.executable).with_name("dagsmith"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSMITH_")}
    subprocess.run([dagsmith, "init", str(project)], check=True, env=env, capture_output=True)
    (project / ".env").write_text("POSTGRES_PASSWORD=envpass-9f3a1\n")
    io_config = (project / "io_config.yaml").read_text()
    if "POSTGRES_PASSWORD" not in io_config:
        io_config += "\n  POSTGRES_PASSWORD: \"{{ env_var('POSTGRES_PASSWORD') }}\"\n"
    (project / "io_config.yaml").write_text(io_config)
    pipe = project / "pipelines" / "leaky"
    pipe.mkdir()
    (pipe / "__init__.py").touch()
    (pipe / "metadata.yaml").write_text(
        "blocks:\n- uuid: leak\n  type: data_loader\n  language: python\n  upstream_blocks: []\nname: leaky\nuuid: leaky\ntype: python\n"
    )
    (project / "data_loaders" / "leak.py").write_text(
        "from mage_ai.data_preparation.shared.secrets import get_secret_value\n"
        "from mage_ai.io.config import ConfigFileLoader\n"
        "from mage_ai.settings.repo import get_repo_path\n"
        "import os\n"
        "@data_loader\n"
        "def load(*a, **k):\n"
        "    print('secret:', get_secret_value('late_pw'))\n"
        "    config = ConfigFileLoader(os.path.join(get_repo_path(), 'io_config.yaml'), 'default')\n"
        "    print('config:', dict(config.items()))\n"
        "    print('item:', config['POSTGRES_PASSWORD'])\n"
        "    import logging, threading\n"
        "    logging.getLogger('probe.block').warning('logged: %s', get_secret_value('late_pw'))\n"
        "    t = threading.Thread(target=lambda: 1 / 0 if get_secret_value('late_pw') else 0, name='probe-' + str(get_secret_value('late_pw')))\n"
        "    t.start(); t.join()\n"
        "    return 1\n"
    )
    for name in ("victim", "victim2"):
        (project / "pipelines" / name).mkdir()
        (project / "pipelines" / name / "__init__.py").touch()
        (project / "pipelines" / name / "metadata.yaml").write_text(f"blocks: []\nname: {name}\nuuid: {name}\ntype: python\n")
    (project / "pipelines" / "linked").symlink_to(outside, target_is_directory=True)
    (outside / "metadata.yaml").write_text("blocks: []\nname: linked\nuuid: linked\n")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "server.log", "w")
    server = subprocess.Popen([dagsmith, "start", str(project), "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = httpx.Client(base_url=base, timeout=30)
        wait_healthy(client)
        before = tree(project)
        outside_before = tree(outside)
        try:
            probe(client, base, port, project, outside, work, dagsmith, env)
        except Exception as exc:  # noqa: BLE001 - a probe that crashed is reported, the rest still runs
            report("probe run", f"crashed: {type(exc).__name__}: {exc}", False)
        after = tree(project) if project.is_dir() else {}
        # new files with cleaned, safe names (a pipeline called "/tmp/x" becomes pipelines/tmp_x) are expected;
        # an existing file changed or gone is not
        changed = sorted(k for k in before if before.get(k) != after.get(k) and "pipelines/leaky" not in k and "pipelines/victim" not in k)
        report("existing project files after all probes", "unchanged" if not changed else f"changed: {changed[:6]}", not changed)
        report("folder outside the project", "unchanged" if tree(outside) == outside_before else "changed", tree(outside) == outside_before)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    server_log = (work / "server.log").read_text(errors="replace")
    for secret in ("late-secret-77c1", "envpass-9f3a1", "changed-secret-3e8b"):
        report(f"server log free of {secret}", "absent" if secret not in server_log else "PRESENT", secret not in server_log)
    broken = [r for r in RESULTS if not r[2]]
    print(f"\n{len(RESULTS) - len(broken)} held, {len(broken)} broken (work folder {work})")
    return 1 if broken else 0


def csrf_of(client: httpx.Client, path: str = "/pipelines", headers: dict | None = None) -> str:
    page = client.get(path, headers=headers or {})
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text) or re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    return found.group(1) if found else client.cookies.get("dagsmith_csrf", "")


def probe(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    for group in (probe_names, probe_data_folder, probe_hosts, probe_secrets, probe_editor, probe_triggers, probe_sessions,
                  probe_bind, probe_delete):
        try:
            group(client, base, port, project, outside, work, dagsmith, env)
        except Exception as exc:  # noqa: BLE001 - one crashed group does not hide the others
            report(group.__name__, f"crashed: {type(exc).__name__}: {exc}", False)


def probe_names(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    # 1. names that leave the project
    before = (project / "metadata.yaml").read_bytes()
    r = client.put("/api/pipelines/%2E%2E/variables", json={"variables": {"pwned": 1}}, headers=hdr)
    report("PUT /api/pipelines/%2E%2E/variables", f"{r.status_code}", (project / "metadata.yaml").read_bytes() == before)
    target = work / "abs_created"
    r = client.post("/pipelines", data={"name": str(target), "csrf_token": token})
    report(f"create pipeline named {target}", f"{r.status_code} {r.headers.get('location', '')}", not target.exists())
    r = client.post("/pipelines/victim/clone", data={"name": str(work / "abs_clone"), "csrf_token": token})
    report("clone pipeline to an absolute path", f"{r.status_code}", not (work / "abs_clone").exists())
    r = client.post("/pipelines/victim2/rename", data={"name": str(work / "abs_renamed"), "csrf_token": token})
    report("rename pipeline to an absolute path", f"{r.status_code} {r.headers.get('location', '')[:60]}", not (work / "abs_renamed").exists())
    r = client.put("/api/pipelines/linked/variables", json={"variables": {"pwned": 1}}, headers=hdr)
    report("PUT variables of a pipeline symlinked outside", f"{r.status_code}", "pwned" not in (outside / "metadata.yaml").read_text())
    r = client.post("/pipelines/victim/edit/blocks", data={"name": str(outside / "v"), "type": "data_loader", "language": "python", "template": "generic", "csrf_token": token})
    report("add block named with an absolute path (UI)", f"{r.status_code}", not (outside / "v.py").exists() and "/" not in (project / "pipelines/victim/metadata.yaml").read_text().split("uuid:")[1].split("\n")[0] if "uuid:" in (project / "pipelines/victim/metadata.yaml").read_text() else True)
    proc = subprocess.run([dagsmith, "blocks", "new", str(project), "victim", str(outside / "blk")], env=env, capture_output=True, text=True)
    report("dagsmith blocks new P victim /abs/path", f"exit {proc.returncode}", proc.returncode == 2 or not any(outside.glob("blk*")))


def probe_data_folder(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    r = client.get("/files", params={"path": ".dagsmith/secrets/key"})
    key = (project / ".dagsmith/secrets/key").read_text().strip() if (project / ".dagsmith/secrets/key").exists() else "\0"
    report("GET /files?path=.dagsmith/secrets/key", f"{r.status_code}", key not in r.text)
    r = client.get("/files", params={"path": ".dagsmith/dagsmith.db"})
    report("GET /files?path=.dagsmith/dagsmith.db", f"{r.status_code}", r.status_code >= 400)
    r = client.post("/files/save", data={"path": ".dagsmith/auth.json", "content": "{}", "csrf_token": token, "base_hash": "", "force": "1"})
    report("POST /files/save into .dagsmith", f"{r.status_code}", not (project / ".dagsmith/auth.json").exists())
    r = client.get("/files", params={"path": "pipelines/linked/metadata.yaml"})
    report("GET /files through a symlink out of the project", f"{r.status_code}", "uuid: linked" not in r.text)


def probe_hosts(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    evil = {"Host": f"evil.example:{port}"}
    r = client.get("/api/pipeline_schedules", headers=evil)
    report("GET /api/pipeline_schedules with Host: evil.example", f"{r.status_code}", r.status_code == 400)
    r = client.get("/pipelines/victim/edit", headers=evil)
    report("GET editor page with Host: evil.example (rebinding)", f"{r.status_code}", r.status_code == 400)
    r = client.post("/api/pipelines/victim/pipeline_runs", content=b"", headers={"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
    report("cross-site form POST /api/pipelines/victim/pipeline_runs", f"{r.status_code}", r.status_code == 403)
    r = client.post("/api/events", content=b'{"event": {"source": "x"}}', headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    report("cross-site text/plain POST /api/events", f"{r.status_code}", r.status_code == 403)
    r = client.post("/api/events", content=b'{"event": {"source": "x"}}', headers={"Content-Type": "text/plain"})
    report("text/plain POST /api/events (no Origin)", f"{r.status_code}", r.status_code in (403, 415))


def probe_secrets(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    r = client.post("/api/secrets", json={"secret": {"name": "late_pw", "value": "late-secret-77c1"}}, headers=hdr)
    r = client.post("/api/pipelines/leaky/pipeline_runs", json={}, headers=hdr)
    run_id = r.json().get("pipeline_run", {}).get("id")
    status = None
    for _ in range(300):
        status = client.get(f"/api/pipeline_runs/{run_id}").json().get("pipeline_run", {}).get("status")
        if status in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.1)
    logs = client.get(f"/api/pipeline_runs/{run_id}/logs").text
    report(f"secret set after start, run logs (run {status})", "clear" if "late-secret-77c1" in logs else "masked", "late-secret-77c1" not in logs and status == "completed")
    report(".env password via io_config in run logs", "clear" if "envpass-9f3a1" in logs else "masked", "envpass-9f3a1" not in logs)
    leaked = [p for p in (project / ".dagsmith").rglob("*") if p.is_file() and p.suffix in (".jsonl", ".log") and b"late-secret-77c1" in p.read_bytes()]
    report("files written by the run free of the secret", f"{len(leaked)} file(s) with it", not leaked)
    # block outputs (the store's _inline.jsonl among them) follow the umask like every output file: the 0700
    # data folder guards them here, and a shared variables_dir must stay readable by its group
    modes = {str(p.relative_to(project)): oct(p.stat().st_mode & 0o777) for p in (project / ".dagsmith").rglob("*")
             if p.is_file() and (p.suffix in (".jsonl", ".db") or p.name == "key") and ".variables" not in p.parts}
    loose = {k: v for k, v in modes.items() if v != "0o600"}
    report("log/DB/key files 0600", f"{len(loose)} loose {list(loose.items())[:3]}", not loose)
    data_mode = oct((project / ".dagsmith").stat().st_mode & 0o777)
    report("data folder (outputs inside) 0700", data_mode, data_mode == "0o700")
    proc = subprocess.run([dagsmith, "run", str(project), "leaky"], env=env, capture_output=True, text=True)
    shown = proc.stdout + proc.stderr
    report("dagsmith run output", f"exit {proc.returncode}, {'masked' if '******' in shown else 'no mask seen'}", proc.returncode == 0 and "late-secret-77c1" not in shown and "envpass-9f3a1" not in shown)


def _editor_run(client, token: str) -> tuple[str, str]:
    """Run the leaky block from the editor (in the editor kernel); its output lines and final cell."""
    r = client.post("/pipelines/leaky/edit/blocks/leak/run", data={"csrf_token": token}, headers={"HX-Request": "true"})
    job = re.search(r'data-job="([0-9a-f]+)"', r.text)
    if not job:
        return "", f"no job: {r.status_code}"
    since, lines = 0, []
    for _ in range(60):
        state = client.get(f"/pipelines/leaky/edit/jobs/{job.group(1)}/poll", params={"since": since, "wait": 5}).json()
        lines += state["lines"]
        since = state["next"]
        if state["done"]:
            break
    return "\n".join(lines), client.get(f"/pipelines/leaky/edit/jobs/{job.group(1)}").text


def probe_editor(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client, "/pipelines/leaky/edit")
    lines, cell = _editor_run(client, token)  # the kernel is up from here on
    shown = lines + cell
    report("editor output: secret set after start", "clear" if "late-secret-77c1" in shown else ("masked" if "secret: ******" in shown else "not printed"),
           "late-secret-77c1" not in shown and "secret: ******" in shown)
    report("editor output: .env password via io_config", "clear" if "envpass-9f3a1" in shown else "masked",
           "envpass-9f3a1" not in shown and "item: ******" in shown)
    # a new value, set by another process after the kernel started
    code = ("from dagsmith.orchestration.settings import OrchestrationSettings as S;"
            "from dagsmith.orchestration.db import get_database;from dagsmith.orchestration.secrets import SecretStore;"
            f"s=S.from_env({str(project)!r}); SecretStore(get_database(s), s.data_dir).set('late_pw', 'changed-secret-3e8b')")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    lines, cell = _editor_run(client, token)
    shown = lines + cell
    report("editor output: secret changed in another process after the kernel started", "clear" if "changed-secret-3e8b" in shown else "masked",
           "changed-secret-3e8b" not in shown and "secret: ******" in shown)
    stored = [p for p in (project / ".dagsmith").rglob("*") if p.is_file() and p.suffix != ".db" and p.name != "key"
              and any(v in p.read_bytes() for v in (b"changed-secret-3e8b", b"late-secret-77c1", b"envpass-9f3a1"))]
    report("files the editor wrote free of secrets", f"{len(stored)} file(s) with one", not stored)


def probe_sessions(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    """A second server with sign-in: logout revokes the cookie, CSRF is bound to the session, failures slow down."""
    port2 = free_port()
    env2 = dict(env, DAGSMITH_AUTH_USER="admin", DAGSMITH_AUTH_PASSWORD="probe-login-pw-1")
    project = work / "proj_signin"  # its own project: one server per SQLite metadata DB
    subprocess.run([dagsmith, "init", str(project)], check=True, env=env, capture_output=True)
    server = subprocess.Popen([dagsmith, "start", str(project), "--port", str(port2)], env=env2,
                              stdout=open(work / "server2.log", "w"), stderr=subprocess.STDOUT)
    try:
        a = httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=60)
        wait_healthy(a)
        r = a.get("/pipelines")
        report("signed-out page", f"{r.status_code} {r.headers.get('location', '')}", r.status_code in (302, 303, 401))
        token = csrf_of(a, "/login")
        r = a.post("/login", data={"user": "admin", "password": "probe-login-pw-1", "csrf_token": token, "next": "/pipelines"})
        cookie = a.cookies.get("dagsmith_session")
        signed_in = a.get("/pipelines").status_code == 200
        b = httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=60)
        token_b = csrf_of(b, "/login")
        b.post("/login", data={"user": "admin", "password": "probe-login-pw-1", "csrf_token": token_b, "next": "/pipelines"})
        session_a_csrf = a.cookies.get("dagsmith_csrf")
        r = b.post("/pipelines", data={"name": "csrf_from_other_session", "csrf_token": session_a_csrf},
                   headers={"X-CSRF-Token": session_a_csrf})
        report("CSRF token of another session", f"{r.status_code}", r.status_code == 403 and not (project / "pipelines" / "csrf_from_other_session").exists())
        a.post("/logout", data={"csrf_token": session_a_csrf}, headers={"X-CSRF-Token": session_a_csrf})
        replay = httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=60, cookies={"dagsmith_session": cookie or ""})
        r = replay.get("/pipelines")
        report("session cookie replayed after logout", f"{r.status_code} {r.headers.get('location', '')}", signed_in and r.status_code != 200)
        c = httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=60)
        token_c = csrf_of(c, "/login")
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            r = c.post("/login", data={"user": "admin", "password": "wrong", "csrf_token": token_c})
            took.append(time.monotonic() - t0)
        report("wrong passwords, answer delays", f"{r.status_code}, {', '.join(f'{t:.1f}' for t in took)} s",
               r.status_code in (401, 429) and took[-1] > took[0])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def probe_triggers(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    r = client.post("/api/pipelines/leaky/pipeline_schedules", json={"pipeline_schedule": {"name": "hook", "schedule_type": "api", "variables": {"db_password": "trigger-var-5511"}}}, headers=hdr)
    trig = r.json()["pipeline_schedule"]
    r = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}", json={})
    report("API-trigger answer free of stored variables", f"{r.status_code} keys={sorted((r.json().get('pipeline_run') or {}).keys())[:8]}", "trigger-var-5511" not in r.text)
    r1 = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/wrong", json={})
    r2 = client.post("/api/pipeline_schedules/999999/pipeline_runs/wrong", json={})
    same = re.sub(r"trigger \d+", "trigger N", r1.text) == re.sub(r"trigger \d+", "trigger N", r2.text)
    report("known vs unknown trigger id, wrong token", f"{r1.status_code} vs {r2.status_code}, bodies {'alike' if same else 'differ'}", r1.status_code == r2.status_code and same)
    client.put(f"/api/pipeline_schedules/{trig['id']}", json={"pipeline_schedule": {"status": "inactive"}}, headers=hdr)
    r = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}", json={})
    still = client.get(f"/api/pipeline_schedules/{trig['id']}").json()["pipeline_schedule"]["status"]
    report("disabled trigger's URL", f"{r.status_code}, trigger now {still}", r.status_code == 403 and still == "inactive")


def probe_bind(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    for host in ("", "0", "::"):
        proc = subprocess.Popen([dagsmith, "start", str(project), "--host", host, "--port", str(free_port()), "--role", "server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        report(f"dagsmith start --host {host!r} without sign-in", "refused (exit 2)" if code == 2 else f"listening (exit {code})", code == 2)


def probe_delete(client, base, port, project: Path, outside: Path, work: Path, dagsmith: str, env: dict) -> None:
    token = csrf_of(client)
    hdr = {"X-CSRF-Token": token}
    token = csrf_of(client)
    r = client.post("/pipelines/%2E%2E/delete", data={"confirm": "..", "csrf_token": token})
    report("POST /pipelines/%2E%2E/delete (confirm '..')", f"{r.status_code}", project.is_dir() and (project / "metadata.yaml").is_file())


if __name__ == "__main__":
    sys.exit(main())
