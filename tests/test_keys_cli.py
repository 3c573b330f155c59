"""`python -m service.keys` end to end: real subprocesses against the test Redis."""

import os
import re
import subprocess
import sys

import pytest

from service.stack import redis_server
from service.store import ApiKeys
from service.store.apikeys import KEY_PATTERN


@pytest.fixture
def keys_command(redis_client, redis_url, tmp_path):
    """Run `python -m service.keys ARGS` with REDIS_URL set (or `env` instead)."""
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "GRADSERVE_DATA_DIR")}

    def run(*args, env=None, cwd=tmp_path):
        return subprocess.run(
            [sys.executable, "-m", "service.keys", *args],
            env={**base, "REDIS_URL": redis_url} if env is None else {**base, **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_create_list_and_revoke(keys_command, redis_client):
    made = keys_command("create", "--tenant", "acme")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()  # the key alone on stdout: KEY=$(python -m service.keys ...)
    assert KEY_PATTERN.fullmatch(key)
    key_id = key.split("_")[1]
    assert key_id in made.stderr and "once" in made.stderr and key not in made.stderr
    keys = ApiKeys(redis_client)
    assert keys.authenticate(key) == "acme"

    listed = keys_command("list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["KEY", "ID", "TENANT", "CREATED", "REVOKED"]
    assert row.split()[:2] == [key_id, "acme"] and row.split()[3] == "-"
    stored_hash = redis_client.hget(keys.keys.api_key(key_id), "hash").decode()
    assert key not in listed.stdout and stored_hash not in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout  # not even the secret part

    revoked = keys_command("revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert key_id in revoked.stdout and "revoked" in revoked.stdout
    assert keys.authenticate(key) is None
    (row,) = keys_command("list").stdout.splitlines()[1:]
    assert re.match(r"\d{4}-\d\d-\d\dT", row.split()[3])  # when it was revoked
    assert keys_command("revoke", key_id).returncode == 0  # again: it stays revoked


def test_revoking_an_unknown_key_fails_clearly(keys_command):
    for key_id in ("0123456789ab", "not-an-id"):
        result = keys_command("revoke", key_id)
        assert result.returncode == 1
        assert f"no key {key_id!r}" in result.stderr


@pytest.mark.parametrize("tenant", ["Acme", "a:b"])
def test_create_refuses_a_bad_tenant_name(keys_command, tenant):
    result = keys_command("create", "--tenant", tenant)
    assert result.returncode == 2 and "tenant" in result.stderr and not result.stdout


def test_without_redis_url_it_reads_var_redis_url(keys_command, redis_url, tmp_path):
    """On the machine of a `make run` stack: ./var/redis-url, as the stack writes it."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "redis-url").write_text(redis_url + "\n")
    made = keys_command("create", "--tenant", "local", env={}, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.split("_")[1] in keys_command("list", env={}, cwd=tmp_path).stdout


def test_an_unreachable_redis_is_a_clear_error(keys_command):
    closed = redis_server.url(redis_server.free_port())
    result = keys_command("list", env={"REDIS_URL": closed})
    assert result.returncode == 1
    assert "Redis" in result.stderr and "Traceback" not in result.stderr
