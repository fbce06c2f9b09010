"""`chipledger --version` says which release is installed, the same one /openapi.json names."""

import subprocess
import sys
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
CHIPLEDGER = Path(sys.executable).parent / "chipledger"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_version_prints_the_installed_release_and_exits_zero(tmp_path):
    result = subprocess.run([str(CHIPLEDGER), "--version"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"chipledger {PROJECT_VERSION}\n"
    assert not (tmp_path / "chipledger.db").exists()  # answered without opening a database


def test_the_openapi_document_names_the_same_release(client: TestClient,
                                                    admin: dict[str, str]):
    assert client.get("/openapi.json", headers=admin).json()["info"]["version"] == \
        PROJECT_VERSION
