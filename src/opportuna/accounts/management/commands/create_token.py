from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.accounts.services import AccountRuleError
from opportuna.accounts.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Create a personal API token for a user and print it once, alone on standard output "
        "(only its hash is kept). Send it as `Authorization: Bearer <token>`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the token's owner.")
        parser.add_argument("--name", default="", help="What the token is for, e.g. 'ERP sync'.")
        parser.add_argument(
            "--read-only", action="store_true", help="The token may only read (GET)."
        )
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Expire after this many days."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {options['user']!r}.") from exc
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be 1 or more.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            token, raw = api_token_create(
                actor=None,
                user=user,
                name=options["name"],
                read_only=options["read_only"],
                expires_at=expires_at,
            )
        except (AccountRuleError, PermissionDenied) as exc:
            raise CommandError(str(exc)) from exc
        kind = "read-only token" if token.read_only else "token"
        until = f", expires {token.expires_at:%Y-%m-%d %H:%M %Z}" if token.expires_at else ""
        self.stderr.write(
            f"Created {kind} {token.prefix} for {user.username}{until}. "
            "Copy it now: it cannot be shown again."
        )
        self.stdout.write(raw)
