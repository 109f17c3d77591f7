"""Starts the real `lianyi` binary for the Python client tests.

LIANYI_BIN picks the binary (default: target/debug/lianyi); LIANYI_PYTEST_DATABASE
picks the database (default: a new SQLite file). scripts/test runs this suite once
per backend.
"""
import os
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def base_url():
    binary = os.environ.get("LIANYI_BIN", os.path.join(ROOT, "target", "debug", "lianyi"))
    data_dir = tempfile.mkdtemp(prefix="lianyi-pytest-")
    args = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir]
    database = os.environ.get("LIANYI_PYTEST_DATABASE")
    if database:
        args += ["--database", database]
    env = dict(os.environ, LIANYI_LOG="warn")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    url = next((w for w in line.split() if w.startswith("http://")), None)
    if url is None:
        proc.kill()
        raise RuntimeError(f"lianyi did not start: {line!r}")
    print(f"lianyi at {url} on {database or 'sqlite'}")
    yield url[: -len("/fhir")]
    proc.terminate()
    proc.wait(timeout=10)
