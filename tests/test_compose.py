"""docker-compose.yml and the Dockerfile: valid for docker-compose (installed from Debian's
packages when missing; `docker-compose config` needs no Docker engine), and of the promised
shape."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PASSWORD = "${REDIS_PASSWORD:?set REDIS_PASSWORD (see the top of docker-compose.yml)}"
URL = f"redis://:{PASSWORD}@redis:6379/0"
COMPOSE_BINARY = "docker-compose"
COMPOSE_PACKAGE = "docker-compose"  # Debian's


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert "--maxmemory ${REDIS_MAXMEMORY:-1gb} " in command  # a ceiling, set by the host
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data" and volume in compose["volumes"]
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_redis_has_a_password_from_the_environment_and_no_published_port(compose):
    redis = compose["services"]["redis"]
    assert "ports" not in redis
    assert redis["environment"] == {"REDIS_PASSWORD": PASSWORD, "REDISCLI_AUTH": PASSWORD}
    command = " ".join(redis["command"])  # read from a 0600 file: never on a command line
    assert "requirepass" in command and "--requirepass" not in command


def test_api_and_worker_share_one_image_and_wait_for_redis(compose):
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api["image"] == worker["image"] and api["build"] == worker["build"] == "."
    for service in (api, worker):
        assert service["environment"]["REDIS_URL"] == URL
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"][0] == "CMD"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["HOST"] == "0.0.0.0"
    assert worker["command"] == ["python", "-m", "service.worker"]
    assert worker["deploy"]["replicas"] >= 1


def test_dockerfile_installs_the_project_and_serves_with_the_gunicorn_config():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile
    assert '"python:service.api.gunicorn_conf"' in dockerfile
    for folder in ("engine", "schemas", "service"):
        assert f"COPY {folder} {folder}" in dockerfile


@pytest.fixture(scope="session")
def docker_compose():
    """The docker-compose binary, Debian's package installed once per session if it is
    missing (CI runs as root on a machine with nothing preinstalled). Without it the test
    fails, saying why: it is never skipped."""
    if not shutil.which(COMPOSE_BINARY):
        if os.geteuid() != 0:
            pytest.fail(f"{COMPOSE_BINARY} is missing: `apt-get install {COMPOSE_PACKAGE}` as root")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]  # another install may hold the lock
        for command in ([*apt, "update"], [*apt, "install", "-y", COMPOSE_PACKAGE]):
            run = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=600,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            if run.returncode != 0:
                pytest.fail(
                    f"{COMPOSE_BINARY} is missing and `{' '.join(command)}` failed "
                    f"({run.returncode}):\n{run.stderr[-2000:]}"
                )
    binary = shutil.which(COMPOSE_BINARY)
    if not binary:
        pytest.fail(f"{COMPOSE_PACKAGE} was installed but {COMPOSE_BINARY} is not on PATH")
    return binary


def test_docker_compose_config_accepts_it_and_refuses_a_broken_copy(docker_compose, tmp_path):
    def config(path, password=None):
        env = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
        if password:
            env["REDIS_PASSWORD"] = password
        command = [docker_compose, "-f", str(path), "config", "-q"]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    ok = config(COMPOSE, password="0123abcd")
    assert ok.returncode == 0, ok.stderr
    without_password = config(COMPOSE)  # no default in the file: refused
    assert without_password.returncode != 0 and "set REDIS_PASSWORD" in without_password.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("replicas: 2", "replicas: two"))
    assert config(broken, password="0123abcd").returncode != 0


def test_the_image_installs_every_package(tmp_path):
    """The Dockerfile's `pip install .` must ship every package, subpackages included, and
    the docs pages' assets."""
    source = tmp_path / "source"  # what the Dockerfile copies, built away from the tree
    for name in ("engine", "schemas", "service"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",  # the build itself gets setuptools as pyproject.toml asks
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("*.whl")
    files = set(zipfile.ZipFile(wheel).namelist())
    shipped = {name.rsplit("/", 1)[0] for name in files}
    for top in ("engine", "schemas", "service"):
        for init in (ROOT / top).rglob("__init__.py"):
            package = init.parent.relative_to(ROOT).as_posix()
            assert package in shipped, f"{package} is not in the wheel"
    # The docs pages' assets are data, not modules: package-data must ship them too, and the
    # console's (its templates, scripts, styles and vendored libraries).
    assets = [p for p in (ROOT / "service").rglob("api_docs_static/**/*") if p.is_file()]
    console = ROOT / "service" / "api" / "console"
    assets += [p for p in console.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert any(p.name == "redoc.standalone.js" for p in assets)
    assert any(p.name == "viz-global.js" for p in assets)
    assert any(p.name == "jobs.html" for p in assets)
    for asset in assets:
        assert asset.relative_to(ROOT).as_posix() in files, f"{asset} is not in the wheel"


def test_the_api_takes_its_metrics_guard_from_the_host(compose):
    environment = compose["services"]["api"]["environment"]
    assert environment["GRADSERVE_METRICS"] == "${GRADSERVE_METRICS:-loopback}"
    assert environment["GRADSERVE_METRICS_TOKEN"] == "${GRADSERVE_METRICS_TOKEN:-}"
    assert "PROMETHEUS_MULTIPROC_DIR" not in environment  # gunicorn makes a private one
