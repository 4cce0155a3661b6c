from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Serve Opportuna on http://127.0.0.1:8000 (or the given address:port) with Django's "
        "development server, static files included. For a team, run a WSGI server such as "
        "gunicorn on opportuna.wsgi behind a TLS proxy instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="Address and port to listen on."
        )
        parser.add_argument(
            "--reload", action="store_true", help="Restart when the code changes (development)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command(
            "runserver", options["addrport"], use_reloader=options["reload"], skip_checks=False
        )
