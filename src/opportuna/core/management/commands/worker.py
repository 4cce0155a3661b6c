"""`opportuna worker`: django-tasks-db's `db_worker` under a short name, with a clear error
when tasks are not queued at all."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand


class Command(DbWorkerCommand):
    help = (
        "Run the background worker: it takes queued tasks (reminder digests, webhook "
        "deliveries, big imports) from the database and runs them; the same as 'opportuna "
        "db_worker', with the same options. By default tasks run immediately, in the process "
        "that enqueues them, and no worker is needed: tasks are only queued when "
        "OPPORTUNA_TASKS_BACKEND=django_tasks_db.DatabaseBackend is set for the app and the "
        "worker. Ctrl+C or SIGTERM stops it once the running task finishes (a second Ctrl+C "
        "stops it at once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        # db_worker checks its default backend while parsing, where a bad one only gets
        # argparse's terse "not a database backend"; check it in handle() instead.
        parser.set_defaults(backend_name=None)
        for action in parser._actions:
            if action.dest == "backend_name":
                action.help = f"The backend to operate on (default: {DEFAULT_TASK_BACKEND_ALIAS!r})"

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["backend_name"] or DEFAULT_TASK_BACKEND_ALIAS
        backend = task_backends[name]
        if not isinstance(backend, DatabaseBackend):
            raise CommandError(
                f"The task backend {name!r} ({type(backend).__module__}."
                f"{type(backend).__qualname__}) does not queue tasks: they run immediately "
                "where they are enqueued, so there is nothing for a worker to do. To queue them, "
                "set OPPORTUNA_TASKS_BACKEND=django_tasks_db.DatabaseBackend for the app and "
                "for the worker."
            )
        super().handle(*args, **{**options, "backend_name": name})
