"""Deployment files: the compose file's shape, and `docker compose config` where Docker has it."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_has_a_database_a_migration_and_a_torch_free_web_app() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"db", "migrate", "web"}
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert services["migrate"]["command"] == ["fieldmark", "db", "upgrade"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("migrate", "web"):
        volumes = services[name]["volumes"]
        assert "./var/assets:/srv/assets:ro" in volumes and "./studies:/srv/studies:ro" in volumes
        env = services[name]["environment"]
        assert env["FIELDMARK_SECRET_KEY"].startswith("${FIELDMARK_SECRET_KEY:?")  # refused when unset
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install ." in dockerfile and "[pipeline" not in dockerfile  # no torch in the web image


def _compose_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="this machine's docker client has no compose plugin")
def test_docker_compose_config_accepts_the_file() -> None:
    env = {"POSTGRES_PASSWORD": "pw", "FIELDMARK_SECRET_KEY": "k" * 48, "PATH": "/usr/bin:/bin:/usr/local/bin"}
    out = subprocess.run(["docker", "compose", "config"], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
