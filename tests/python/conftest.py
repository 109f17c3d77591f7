"""Starts the real `lianyi` binary for the Python client tests.

LIANYI_BIN picks the binary (default: target/debug/lianyi); LIANYI_PYTEST_DATABASE
picks the backend (default: a new SQLite file per server; a PostgreSQL URL: a new
database per server beside it). scripts/test runs this suite once per backend.
"""
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def own_database(url):
    """A new, empty PostgreSQL database beside the one named by `url`, for one server:
    servers sharing a database would each dispatch the others' outbound channels
    (with keys that cannot decrypt them)."""
    if not url.startswith("postgres"):
        return url
    base, _, _ = url.rpartition("/")
    name = f"lianyi_pytest_{uuid.uuid4().hex[:12]}"
    host_port = base.split("@", 1)[-1]
    host, _, port = host_port.partition(":")
    createdb = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "createdb")
    subprocess.run([createdb, "-h", host, "-p", port or "5432", "-U", "postgres", name], check=True)
    return f"{base}/{name}"


class Server:
    """A `lianyi serve` process on a free port with its own data folder."""

    def __init__(self, config=""):
        self.binary = os.environ.get("LIANYI_BIN", os.path.join(ROOT, "target", "debug", "lianyi"))
        self.data_dir = tempfile.mkdtemp(prefix="lianyi-pytest-")
        database = os.environ.get("LIANYI_PYTEST_DATABASE")
        self.where = ["--data-dir", self.data_dir]
        if database:
            self.where += ["--database", own_database(database)]
        if config:
            path = os.path.join(self.data_dir, "lianyi.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(config)
            self.where += ["--config", path]
        self.env = dict(os.environ, LIANYI_LOG="warn")
        self.proc = None
        self.base = None

    def cli(self, *args):
        out = subprocess.run([self.binary, *args, *self.where], capture_output=True, text=True, env=self.env)
        if out.returncode != 0:
            raise RuntimeError(f"lianyi {args[0]} exited with {out.returncode}: {out.stderr.strip()}")
        return out.stdout

    def start(self, *serve_args):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "127.0.0.1:0", *serve_args, *self.where],
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        line = self.proc.stdout.readline()
        url = next((w for w in line.split() if w.startswith(("http://", "https://"))), None)
        if url is None:
            self.proc.kill()
            raise RuntimeError(f"lianyi did not start: {line!r}")
        self.base = url[: -len("/fhir")]
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    s = Server()
    # An API client with every scope, registered through the CLI as an operator would.
    creds = json.loads(s.cli("client", "add", "pytest", "--scope", "system/*.cruds"))
    s.start()
    yield {"base": s.base, "client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    s.stop()


@pytest.fixture(scope="session")
def base_url(server):
    return server["base"]


@pytest.fixture(scope="session")
def token(server):
    """A bearer token from POST /oauth/token (client credentials)."""
    r = requests.post(
        server["base"] + "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": server["client_id"], "client_secret": server["client_secret"]},
    )
    r.raise_for_status()
    return r.json()["access_token"]
