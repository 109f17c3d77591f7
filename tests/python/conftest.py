"""Starts the real `lianyi` binary for the Python client tests.

LIANYI_BIN picks the binary (default: target/debug/lianyi); LIANYI_PYTEST_DATABASE
picks the database (default: a new SQLite file). scripts/test runs this suite once
per backend.
"""
import json
import os
import subprocess
import tempfile

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("LIANYI_BIN", os.path.join(ROOT, "target", "debug", "lianyi"))
    data_dir = tempfile.mkdtemp(prefix="lianyi-pytest-")
    database = os.environ.get("LIANYI_PYTEST_DATABASE")
    where = ["--data-dir", data_dir] + (["--database", database] if database else [])
    env = dict(os.environ, LIANYI_LOG="warn")
    # An API client with every scope, registered through the CLI as an operator would.
    add = [binary, "client", "add", "pytest", "--scope", "system/*.cruds"] + where
    creds = json.loads(subprocess.run(add, check=True, capture_output=True, text=True, env=env).stdout)
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0"] + where, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    url = next((w for w in line.split() if w.startswith("http://")), None)
    if url is None:
        proc.kill()
        raise RuntimeError(f"lianyi did not start: {line!r}")
    print(f"lianyi at {url} on {database or 'sqlite'}")
    yield {"base": url[: -len("/fhir")], "client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    proc.terminate()
    proc.wait(timeout=10)


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
