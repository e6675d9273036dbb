"""The operator CLI as a newcomer runs it: db upgrade, org create, user create, then log in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)

HERALD = str(Path(sys.executable).with_name("herald"))


def run(args: list[str], database_url: str, cwd: Path, check: bool = True):
    env = {**os.environ, "HERALD_DATABASE_URL": database_url, "HERALD_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [HERALD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def command_paths() -> list[tuple[list[str], str]]:
    """Every group and command of the CLI with its help text, walked from the app itself."""
    import typer.main

    from herald.cli.main import app

    found: list[tuple[list[str], str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append((path, str(getattr(command, "help", None) or "")))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_has_help_that_says_what_it_does():
    from typer.testing import CliRunner

    from herald.cli.main import app

    paths = command_paths()
    assert len(paths) >= 20, paths
    runner = CliRunner()
    for path, help_text in paths:
        assert len(help_text.split()) >= 3, (
            f"herald {' '.join(path)} says too little: {help_text!r}"
        )
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path
        assert help_text.split()[0] in result.output, path


def test_the_installed_command_answers_from_any_directory(tmp_path):
    result = subprocess.run(
        [HERALD, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "campaign" in result.stdout and "dev" in result.stdout


def test_new_user_path_upgrade_create_then_login(database_url, live_server, tmp_path):
    # from an unrelated directory: the migrations ship inside the package
    run(["db", "upgrade"], database_url, tmp_path)
    org = json.loads(
        run(
            ["org", "create", "--name", "Acme Ltd", "--features", "marketing", "--json"],
            database_url,
            tmp_path,
        ).stdout
    )
    assert org["name"] == "Acme Ltd" and org["features"] == ["marketing"]
    email = f"boss-{org['id'][:8]}@acme.example"
    user = json.loads(
        run(
            [
                "user",
                "create",
                "--org",
                org["id"],
                "--email",
                email,
                "--password",
                "s3cret-passw0rd",
                "--role",
                "ADMIN",
                "--json",
            ],
            database_url,
            tmp_path,
        ).stdout
    )
    assert user == {"id": user["id"], "email": email, "role": "ADMIN", "orgId": org["id"]}

    plain = run(["org", "create", "--name", "Plain"], database_url, tmp_path).stdout.strip()
    assert len(plain) == 36  # just the id

    response = httpx.post(  # the CLI hashed at the production cost: slow on a busy machine
        f"{live_server.url}/api/auth/login",
        json={"email": email, "password": "s3cret-passw0rd"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["user"] == user

    listed = json.loads(
        run(["user", "list", "--org", org["id"], "--json"], database_url, tmp_path).stdout
    )
    assert [u["email"] for u in listed["items"]] == [email]


@pytest.mark.usefixtures("runtime")  # the migrated database
def test_org_features_can_be_switched(database_url, tmp_path):
    org = json.loads(run(["org", "create", "--name", "F", "--json"], database_url, tmp_path).stdout)
    assert org["features"] == []
    out = run(
        ["org", "features", "--org", org["id"], "--set", "marketing", "--json"],
        database_url,
        tmp_path,
    )
    assert json.loads(out.stdout)["features"] == ["marketing"]
    out = run(
        ["org", "features", "--org", org["id"], "--set", "", "--json"], database_url, tmp_path
    )
    assert json.loads(out.stdout)["features"] == []


@pytest.mark.usefixtures("runtime")  # the migrated database
@pytest.mark.parametrize(
    "args, message",
    [
        (["org", "create", "--name", "X", "--features", "teleport"], "Unknown licence feature"),
        (
            ["user", "create", "--org", "not-an-id", "--email", "a@b.co", "--password", "12345678"],
            "not found",
        ),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(database_url, tmp_path, args, message):
    result = run(args, database_url, tmp_path, check=False)
    assert result.returncode == 1
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("runtime")  # the migrated database
def test_json_errors_are_one_json_object(database_url, tmp_path):
    org = json.loads(run(["org", "create", "--name", "J", "--json"], database_url, tmp_path).stdout)
    result = run(
        [
            "user",
            "create",
            "--org",
            org["id"],
            "--email",
            "bad",
            "--password",
            "12345678",
            "--json",
        ],
        database_url,
        tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "validation_error"
