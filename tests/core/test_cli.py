"""The `opportuna` console script (and `python -m opportuna`): this project's manage.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Django's commands the docs and the Makefile rely on; the project's own commands
# (demo, serve, forecast, ...) join this list as they land.
EXPECTED_COMMANDS = [
    "check",
    "createsuperuser",
    "makemigrations",
    "makemessages",
    "migrate",
    "db_worker",
    # The project's own commands.
    "serve",
    "demo",
    "forecast",
    "create_token",
    "rebuild_search_index",
    "import_opportunities",
    "export_opportunities",
    "backup",
    "restore",
    "send_reminders",
    "worker",
]


def opportuna(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OPPORTUNA_")
        and name not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["OPPORTUNA_DATA_DIR"] = str(data_dir)
    # The arguments come from the tests themselves, never from outside.
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "opportuna", *args],
        env=env,
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def help_run(tmp_path_factory) -> subprocess.CompletedProcess[str]:
    return opportuna("help", data_dir=tmp_path_factory.mktemp("cli"))


def test_help_succeeds(help_run):
    assert help_run.returncode == 0, help_run.stderr


@pytest.mark.parametrize("command", EXPECTED_COMMANDS)
def test_help_lists_command(help_run, command):
    listed = {line.strip() for line in help_run.stdout.splitlines()}
    assert command in listed, help_run.stdout


def test_dash_dash_help_is_the_same_as_help(help_run, tmp_path):
    assert opportuna("--help", data_dir=tmp_path).stdout == help_run.stdout
