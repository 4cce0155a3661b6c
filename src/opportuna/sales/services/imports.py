"""Imports: many opportunities or client folders at once, with every rule of the services.

`opportunity_import_batch` takes rows already read from a file (amounts in cents, dates as
dates, people, steps and catalogues by name) and for each one creates an opportunity, updates
the one with the same external id through the usual services, leaves it as it is, or rejects
the row naming the field and the reason. A row is all or nothing.

New opportunities are checked first, with the checks `opportunity_create` and the closing
services use, then written together: one statement per table per batch, the events that
`record()` would write (created, and standby/won/lost/cancelled for those not open), each
announced after commit, and the search index refreshed. An update goes through
`opportunity_update`, `opportunity_move`, ... one row at a time, so nothing is written twice.

A dry run checks everything and writes nothing: new rows are only checked, updates are played
inside a savepoint that is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from opportuna.accounts.models import User
from opportuna.core.announce import Announcement, announce_many, past_changed
from opportuna.core.database import refresh_planner_statistics
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.fieldtext import clean_field_values
from opportuna.sales.models import (
    CLOSED_STATUSES,
    Client,
    Contact,
    EventKind,
    FieldDefinition,
    LostReason,
    Opportunity,
    OpportunityEvent,
    Pipeline,
    Product,
    Status,
    Step,
    Tag,
)
from opportuna.sales.selectors import can_edit_opportunity, visible_opportunities
from opportuna.sales.services._common import event_announcement, require_active, to_json
from opportuna.sales.services.clients import CLIENT_FIELDS, _clean, client_create, client_update
from opportuna.sales.services.collaboration import contact_add, tag_add, tag_remove
from opportuna.sales.services.config import _check_probability
from opportuna.sales.services.opportunities import (
    _check_amount,
    _check_length,
    _check_owner,
    _check_title,
    _contact,
    _standby_datetime,
    _tag,
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_move,
    opportunity_plan_next_action,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_standby,
    opportunity_update,
)

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
REJECTED = "rejected"
ACTIONS = (CREATED, UPDATED, UNCHANGED, REJECTED)

_FUTURE_SLACK = timedelta(minutes=5)  # as the closing services allow


# What comes in and what goes out ------------------------------------------------------------


@dataclass(slots=True)
class ImportRow:
    """One opportunity row of a file, read into Python values; references are by name.

    `fields` holds raw default-field values by definition key (an empty one clears the field
    on update); `fields_complete` says they are the whole block (a noCRM text column), so an
    update clears the others.
    """

    number: int
    given: frozenset[str]
    external_id: str = ""
    title: str = ""
    client: str = ""
    client_external_id: str = ""
    owner: str = ""
    pipeline: str = ""
    step: str = ""
    status: str = ""
    amount: int | None = None
    probability: int | None = None
    won_amount: int | None = None
    product: str = ""
    expected_close_date: date | None = None
    next_action_at: datetime | None = None
    next_action_note: str = ""
    created_at: datetime | None = None
    closed_at: datetime | None = None
    lost_reason: str = ""
    lost_note: str = ""
    tags: list[str] = field(default_factory=list)
    description: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    fields_complete: bool = False
    contacts: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class ClientRow:
    """One client-folder row of a file; `values` by client field name."""

    number: int
    values: dict[str, str]


@dataclass(slots=True)
class RowResult:
    """What became of one row: its action, the opportunity or client, and why if rejected.

    `errors` are (field, message) pairs; the field is a value name ("amount"),
    "field:<key>" for a default field, or "" for the whole row.
    """

    number: int
    action: str
    title: str = ""
    object_id: int | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ImportReport:
    """Row by row results, and the client folders and tags the import creates."""

    rows: list[RowResult] = field(default_factory=list)
    new_clients: list[str] = field(default_factory=list)
    new_tags: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action)

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(ACTIONS, 0)
        for row in self.rows:
            totals[row.action] += 1
        return totals

    def extend(self, other: ImportReport) -> None:
        self.rows.extend(other.rows)
        self.new_clients.extend(other.new_clients)
        self.new_tags.extend(other.new_tags)


class _Rejected(Exception):
    """A row breaks rules: every (field, message) found."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _message(error: Exception) -> str:
    if isinstance(error, SalesRuleError):
        return str(error.message)
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error) or _("Not allowed.")


@lru_cache(maxsize=8192)
def _fold(name: str) -> str:
    """A name as names are compared: case and repeated spaces ignored."""
    return " ".join(name.split()).casefold()


# The context of a whole import --------------------------------------------------------------


class ImportContext:
    """What every batch of one import shares: the catalogues read once, and what it created.

    Build one per import and pass it to each batch: a dry run then also knows that a client
    folder or an external id met in an earlier batch is already taken care of.
    """

    def __init__(self, actor: User) -> None:
        require_importer(actor)
        self.actor = actor
        self.definitions = list(FieldDefinition.objects.all())
        self.required_fields = any(d.required and d.is_active for d in self.definitions)
        self.users: dict[str, list[User]] = {}
        for user in User.objects.all():
            for key in {user.username.casefold(), user.email.casefold()} - {""}:
                self.users.setdefault(key, []).append(user)
        self.owner_errors: dict[int, str | None] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.default_pipeline: Pipeline | None = None
        for pipeline in Pipeline.objects.order_by("-is_active", "position", "name"):
            self.pipelines.setdefault(_fold(pipeline.name), pipeline)
            self.default_pipeline = self.default_pipeline or pipeline
        self.steps: dict[tuple[int, str], Step] = {}
        self.steps_by_name: dict[str, list[Step]] = {}
        self.first_steps: dict[int, Step] = {}
        for step in Step.objects.order_by("pipeline", "position", "pk"):
            self.steps.setdefault((step.pipeline_id, _fold(step.name)), step)
            self.steps_by_name.setdefault(_fold(step.name), []).append(step)
            self.first_steps.setdefault(step.pipeline_id, step)
        self.products = {_fold(p.name): p for p in Product.objects.all()}
        self.lost_reasons = {_fold(r.name): r for r in LostReason.objects.all()}
        self.tags = {_fold(t.name): t for t in Tag.objects.all()}
        self.new_tags: set[str] = set()
        # Client folders by external id and by name, read when first needed.
        self._clients_read = False
        self.clients_by_external: dict[str, list[int]] = {}
        self.clients_by_name: dict[str, list[int]] = {}
        self.client_external: dict[int, str] = {}
        # A client import's dry run: the folders it would create, by stand-in id.
        self.planned_clients: dict[int, dict[str, str]] = {}
        self.new_clients: dict[str, int | None] = {}
        # Opportunities created so far, and how many there must be before the planner's
        # statistics are refreshed again (after the first batch, then at each doubling).
        self.created = 0
        self.statistics_at = 1
        # Folders created by the update being played, kept only if its savepoint is.
        self.pending_clients: dict[str, int] = {}
        self.client_errors: dict[str, str | None] = {}
        # External ids met in this import: the row that had it first.
        self.external_ids: dict[str, int] = {}
        self.editable_owners: dict[int, bool] = {}

    def read_clients(self) -> None:
        if self._clients_read:
            return
        rows = Client.objects.values_list("pk", "name", "external_id").order_by("pk")
        for pk, name, external_id in rows.iterator(chunk_size=5000):
            self.clients_by_name.setdefault(_fold(name), []).append(pk)
            if external_id:
                self.clients_by_external.setdefault(external_id, []).append(pk)
                self.client_external[pk] = external_id
        self._clients_read = True

    def owner(self, key: str) -> User:
        """The owner named by username or email; the actor when empty; checked once each."""
        if not key:
            user = self.actor
        else:
            found = self.users.get(key.strip().casefold(), [])
            if not found:
                raise SalesRuleError(
                    _("No user is called %(name)s.") % {"name": key}, field="owner"
                )
            if len(found) > 1:
                raise SalesRuleError(
                    _("Several users have the email %(name)s; give the username.") % {"name": key},
                    field="owner",
                )
            user = found[0]
        if user.pk not in self.owner_errors:
            try:
                _check_owner(self.actor, user)
            except (SalesRuleError, PermissionDenied) as error:
                self.owner_errors[user.pk] = _message(error)
            else:
                self.owner_errors[user.pk] = None
        problem = self.owner_errors[user.pk]
        if problem:
            raise SalesRuleError(problem, field="owner")
        return user

    def pipeline_and_step(self, pipeline_name: str, step_name: str) -> tuple[Pipeline, Step]:
        if pipeline_name:
            pipeline = self.pipelines.get(_fold(pipeline_name))
            if pipeline is None:
                raise SalesRuleError(
                    _("No pipeline is called %(name)s.") % {"name": pipeline_name},
                    field="pipeline",
                )
        elif step_name:
            # A step name alone is enough when only one pipeline has it.
            candidates = self.steps_by_name.get(_fold(step_name), [])
            if len(candidates) == 1:
                step = candidates[0]
                return self._pipeline_of(step), step
            if not candidates:
                raise SalesRuleError(
                    _("No step is called %(name)s.") % {"name": step_name}, field="step"
                )
            raise SalesRuleError(
                _("Several pipelines have a step called %(name)s; add a pipeline column.")
                % {"name": step_name},
                field="step",
            )
        else:
            pipeline = self.default_pipeline
            if pipeline is None:
                raise SalesRuleError(_("There is no pipeline yet."), field="pipeline")
        if step_name:
            found = self.steps.get((pipeline.pk, _fold(step_name)))
            if found is None:
                raise SalesRuleError(
                    _("The pipeline %(pipeline)s has no step called %(name)s.")
                    % {"pipeline": pipeline.name, "name": step_name},
                    field="step",
                )
            return pipeline, found
        first = self.first_steps.get(pipeline.pk)
        if first is None:
            raise SalesRuleError(_("This pipeline has no steps yet."), field="step")
        return pipeline, first

    def _pipeline_of(self, step: Step) -> Pipeline:
        for pipeline in self.pipelines.values():
            if pipeline.pk == step.pipeline_id:
                return pipeline
        raise SalesRuleError(_("This step has no pipeline."), field="step")

    def named(self, catalogue: dict[str, Any], name: str, field_name: str, message: str) -> Any:
        if not name:
            return None
        found = catalogue.get(_fold(name))
        if found is None:
            raise SalesRuleError(message % {"name": name}, field=field_name)
        return found

    def tag_key(self, name: str) -> str | None:
        """The tag a name means (cut as `_tag` cuts it), folded; None for a blank name."""
        limit = Tag._meta.get_field("name").max_length
        name = name.strip()[:limit].strip()
        return _fold(name) if name else None

    def client_key(self, name: str, external_id: str) -> str:
        """Which client folder a row means: an existing id as text, or "new:" + what to create.

        By external id when there is one, else by name (ignoring case and repeated spaces).
        """
        self.read_clients()
        if external_id:
            found = self.clients_by_external.get(external_id, [])
        else:
            found = self.clients_by_name.get(_fold(name), [])
        if len(found) > 1:
            raise SalesRuleError(
                _("Several client folders match %(name)s; use a client external id column.")
                % {"name": external_id or name},
                field="client",
            )
        if found:
            return str(found[0])
        if not name.strip():
            raise SalesRuleError(
                _("No client folder has the external id %(name)s; give its name to create it.")
                % {"name": external_id},
                field="client",
            )
        key = f"new:{external_id}" if external_id else f"new:{_fold(name)}"
        if key not in self.client_errors:
            try:
                _clean(Client(name=name, external_id=external_id))
            except SalesRuleError as error:
                self.client_errors[key] = _message(error)
            else:
                self.client_errors[key] = None
        problem = self.client_errors[key]
        if problem:
            raise SalesRuleError(problem, field="client")
        return key

    def can_edit(self, opportunity: Opportunity) -> bool:
        owner = opportunity.owner_id
        if owner not in self.editable_owners:
            self.editable_owners[owner] = can_edit_opportunity(self.actor, opportunity)
        return self.editable_owners[owner]


def require_importer(actor: User) -> None:
    """Only an admin or a manager may import."""
    require_active(actor)
    if not (actor.is_admin or actor.is_manager):
        raise PermissionDenied(_("Only an admin or a manager can import."))


# Checking a new opportunity -----------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """A checked new opportunity, ready to be written."""

    row: ImportRow
    title: str
    owner_id: int
    pipeline_id: int
    step_id: int
    client_key: str
    product_id: int | None
    lost_reason_id: int | None
    status: str
    probability: int
    manual: bool
    fields: dict[str, str]
    tag_keys: list[str]
    tag_names: dict[str, str]
    contacts: list[dict[str, str]]
    created_at: datetime
    closed_at: datetime | None
    next_action_at: datetime | None
    won_amount: int | None


def _check(errors: list[tuple[str, str]], check: Callable[[], Any], field_name: str = "") -> Any:
    """Run one check; note its message (under its field) instead of stopping at the first."""
    try:
        return check()
    except (SalesRuleError, PermissionDenied, ValidationError) as error:
        name = getattr(error, "field", None) or field_name
        errors.append((name, _message(error)))
        return None


def _clean_fields(values: dict[str, str], ctx: ImportContext) -> dict[str, str]:
    """Default-field values checked as the services check them; one error per bad field."""
    if not values and not ctx.required_fields:  # what the check would find, row after row
        return {}
    try:
        return clean_field_values(values, ctx.definitions)
    except ValidationError as exc:
        raise _Rejected(
            [
                (f"field:{key}", " ".join(str(m) for m in messages))
                for key, messages in exc.message_dict.items()
            ]
        ) from exc


_NO_PRODUCT = gettext_lazy("No product is called %(name)s.")
_LIMITED = ("next_action_note", "external_id")
_LIMITS = {name: Opportunity._meta.get_field(name).max_length or 0 for name in _LIMITED}


def _plan_create(row: ImportRow, ctx: ImportContext, now: datetime, today: date) -> _Plan:
    """Check a new opportunity as `opportunity_create` (and closing it) would; every error."""
    errors: list[tuple[str, str]] = []
    title = _check(errors, lambda: _check_title(row.title), "title")
    owner = _check(errors, lambda: ctx.owner(row.owner), "owner")
    places = _check(errors, lambda: ctx.pipeline_and_step(row.pipeline, row.step), "step")
    amount = row.amount or 0
    _check(errors, lambda: _check_amount(amount), "amount")
    if row.probability is not None:
        _check(errors, lambda: _check_probability(row.probability), "probability")
    for name in _LIMITED:
        if len(getattr(row, name)) > _LIMITS[name]:
            _check(errors, lambda name=name: _check_length(getattr(row, name), name))
    product = None
    if row.product:
        product = _check(
            errors, lambda: ctx.named(ctx.products, row.product, "product", _NO_PRODUCT)
        )
    client_key = ""
    if row.client or row.client_external_id:
        client_key = _check(
            errors, lambda: ctx.client_key(row.client, row.client_external_id), "client"
        )
    fields: dict[str, str] = {}
    try:
        fields = _clean_fields(row.fields, ctx)
    except _Rejected as rejected:
        errors.extend(rejected.errors)
    contacts = [_check(errors, lambda c=c: _contact(c), "contacts") for c in row.contacts]
    tag_keys: list[str] = []
    tag_names: dict[str, str] = {}
    for name in row.tags:
        key = ctx.tag_key(name)
        if key and key not in tag_names:
            tag_keys.append(key)
            tag_names[key] = name.strip()
    # Without a creation date: now, or when it closed if that was earlier.
    created_at = row.created_at or min(now, row.closed_at or now)
    if created_at > now + _FUTURE_SLACK:
        errors.append(("created_at", _("A creation date cannot be in the future.")))
    status = row.status or Status.TODO
    closed_at = next_action_at = won_amount = lost_reason = None
    if status in (Status.WON, Status.LOST, Status.CANCELLED):
        closed_at = row.closed_at or now
        if closed_at > now + _FUTURE_SLACK:
            errors.append(("closed_at", _("A closing date cannot be in the future.")))
        if status == Status.WON:
            won_amount = amount if row.won_amount is None else row.won_amount
            _check(errors, lambda: _check_amount(won_amount, "won_amount"), "won_amount")
        elif status == Status.LOST:
            lost_reason = _check(errors, lambda: _lost_reason(row.lost_reason, ctx), "lost_reason")
    elif status == Status.STANDBY:
        until = timezone.localdate(row.next_action_at) if row.next_action_at else None
        if until is None:
            errors.append(("next_action_at", _("Say until when it is on standby.")))
        elif until <= today:
            errors.append(("next_action_at", _("A standby date must be in the future.")))
        else:
            next_action_at = _standby_datetime(until)
    else:
        next_action_at = row.next_action_at or now
    if row.external_id:
        first = ctx.external_ids.get(row.external_id)
        if first is not None and first != row.number:
            errors.append(
                ("external_id", _("Row %(row)d has the same external id.") % {"row": first})
            )
    if errors:
        raise _Rejected(errors)
    pipeline, step = places
    return _Plan(
        row=row,
        title=title,
        owner_id=owner.pk,
        pipeline_id=pipeline.pk,
        step_id=step.pk,
        client_key=client_key,
        product_id=product.pk if product else None,
        lost_reason_id=lost_reason.pk if lost_reason else None,
        status=status,
        probability=step.probability if row.probability is None else row.probability,
        # The step's own probability, written out, still follows the step.
        manual=row.probability is not None and row.probability != step.probability,
        fields=fields,
        tag_keys=tag_keys,
        tag_names=tag_names,
        contacts=contacts,
        created_at=created_at,
        closed_at=closed_at,
        next_action_at=next_action_at,
        won_amount=won_amount,
    )


def _lost_reason(name: str, ctx: ImportContext) -> LostReason:
    if not name:
        raise SalesRuleError(_("Say why it was lost: choose a reason."), field="lost_reason")
    reason = ctx.named(
        ctx.lost_reasons, name, "lost_reason", _("No lost reason is called %(name)s.")
    )
    if not reason.is_active:
        raise SalesRuleError(_("This lost reason is no longer in use."), field="lost_reason")
    return reason


# Writing new opportunities in bulk ----------------------------------------------------------


class _Insert:
    """One prepared INSERT of whole rows of a model: `executemany` on SQLite, COPY on PostgreSQL.

    The columns must cover every field of the model, so a new field fails here loudly
    instead of being left to its default.
    """

    def __init__(self, model: type[models.Model], names: str, *, with_id: bool = True) -> None:
        fields = [model._meta.get_field(name) for name in names.split()]
        missing = {f.name for f in model._meta.concrete_fields if not f.primary_key} - {
            f.name for f in fields
        }
        if missing:
            raise RuntimeError(f"the import does not write {model.__name__}.{sorted(missing)}")
        quote = connection.ops.quote_name
        columns = [quote(f.column) for f in fields]  # type: ignore[union-attr]
        if with_id:
            columns.insert(0, quote(model._meta.pk.column))  # type: ignore[union-attr]
        table = quote(model._meta.db_table)
        marks = ", ".join(["%s"] * len(columns))
        self.sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        self.copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN"

    def run(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(self.copy) as copy:  # psycopg's own cursor
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(self.sql, rows)


_OPPORTUNITY_COLUMNS = (
    "title client owner pipeline step status amount won_amount probability "
    "probability_is_manual product expected_close_date next_action_at next_action_note fields "
    "description lost_reason lost_note duplicated_from external_id created_at updated_at "
    "closed_at version"
)
_inserts: dict[str, _Insert] = {}


def _insert(name: str) -> _Insert:
    """The prepared INSERT for this connection's database, built once."""
    key = f"{connection.vendor}:{name}"
    if key not in _inserts:
        model, columns, with_id = {
            "opportunity": (Opportunity, _OPPORTUNITY_COLUMNS, True),
            "event": (OpportunityEvent, "opportunity actor at kind changes data", True),
            "contact": (Contact, "opportunity position name role email phone", False),
            "tag": (Opportunity.tags.through, "opportunity tag", False),
            "client": (
                Client,
                "name vat_number email phone website address city country notes external_id "
                "created_at",
                True,
            ),
        }[name]
        _inserts[key] = _Insert(model, columns, with_id=with_id)  # type: ignore[arg-type]
    return _inserts[key]


def _reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """`count` new primary keys for `model`, which no other writer can take.

    PostgreSQL hands them out from the table's sequence. On SQLite the transaction holds the
    write lock from its start (`transaction_mode="IMMEDIATE"`), so the ids after the highest
    ever used (AUTOINCREMENT never reuses one) stay free until it commits.
    """
    if count == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        quoted = connection.ops.quote_name(table)
        highest = f"SELECT max(id) FROM {quoted}"  # noqa: S608 - a model's own table
        sequence = "SELECT seq FROM sqlite_sequence WHERE name = %s"
        sql = f"SELECT max(coalesce(({sequence}), 0), coalesce(({highest}), 0))"  # noqa: S608
        cursor.execute(sql, [table])
        start = int(cursor.fetchone()[0]) + 1
    return list(range(start, start + count))


def _event_changes(plan: _Plan) -> tuple[str, dict[str, list[Any]]] | None:
    """The second event of an opportunity created standby or closed: what `set_fields` notes."""
    # Moments in UTC, as the services note the values they read back from the database.
    opened_at = to_json(plan.created_at.astimezone(UTC))
    if plan.status == Status.STANDBY:
        return EventKind.STANDBY, {"status": [Status.TODO, Status.STANDBY]}
    if plan.status == Status.WON:
        return EventKind.WON, {
            "status": [Status.TODO, Status.WON],
            "won_amount": [None, plan.won_amount],
            "closed_at": [None, to_json(plan.closed_at.astimezone(UTC))],  # type: ignore[union-attr]
            "next_action_at": [opened_at, None],
        }
    changes: dict[str, list[Any]] = {"status": [Status.TODO, plan.status]}
    if plan.status == Status.LOST:
        changes["lost_reason"] = [None, plan.lost_reason_id]
    note = plan.row.lost_note.strip()
    if note:
        changes["lost_note"] = ["", note]
    changes["closed_at"] = [None, to_json(plan.closed_at.astimezone(UTC))]  # type: ignore[union-attr]
    changes["next_action_at"] = [opened_at, None]
    kind = EventKind.LOST if plan.status == Status.LOST else EventKind.CANCELLED
    return kind, changes


class _Values:
    """Python values as the database stores them; a repeated moment is converted once."""

    def __init__(self) -> None:
        ops = connection.ops
        self._stamp = ops.adapt_datetimefield_value
        self._json = ops.adapt_json_value
        self.day = ops.adapt_datefield_value
        self.empty = self._json({}, None)
        self._stamps: dict[datetime, Any] = {}

    def stamp(self, moment: datetime | None) -> Any:
        if moment is None:
            return None
        stored = self._stamps.get(moment)
        if stored is None:
            stored = self._stamps[moment] = self._stamp(moment)
        return stored

    def json(self, value: Any) -> Any:
        return self._json(value, None) if value else self.empty


def _write_creates(plans: list[_Plan], ctx: ImportContext, now: datetime) -> list[int]:
    """Insert the opportunities, their tags, contacts and events; announce; index. Their ids."""
    actor_id = ctx.actor.pk
    values = _Values()
    stamp, day, as_json = values.stamp, values.day, values.json
    ids = _reserve_ids(Opportunity, len(plans))
    opportunities: list[tuple[Any, ...]] = []
    contacts: list[tuple[Any, ...]] = []
    tag_links: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []  # (opportunity, at, kind, changes, data)
    updated = stamp(now)
    for pk, plan in zip(ids, plans, strict=True):
        row = plan.row
        tag_ids = [ctx.tags[key].pk for key in plan.tag_keys]
        second = _event_changes(plan) if plan.status != Status.TODO else None
        key = plan.client_key
        client_id = ctx.new_clients[key] if key.startswith("new:") else int(key) if key else None
        amount = row.amount or 0
        opportunities.append(
            (
                pk,
                plan.title,
                client_id,
                plan.owner_id,
                plan.pipeline_id,
                plan.step_id,
                plan.status,
                amount,
                plan.won_amount,
                plan.probability,
                plan.manual,
                plan.product_id,
                day(row.expected_close_date),
                stamp(plan.next_action_at),
                row.next_action_note,
                as_json(plan.fields),
                row.description,
                plan.lost_reason_id,
                row.lost_note.strip() if plan.status in (Status.LOST, Status.CANCELLED) else "",
                None,
                row.external_id,
                stamp(plan.created_at),
                updated,
                stamp(plan.closed_at),
                1 if second is None else 2,
            )
        )
        for position, contact in enumerate(plan.contacts):
            contacts.append(
                (pk, position, contact["name"], contact["role"], contact["email"], contact["phone"])
            )
        tag_links.extend((pk, tag_id) for tag_id in tag_ids)
        # The event `opportunity_create` records, then the one its status took.
        data = {
            "title": plan.title,
            "pipeline": plan.pipeline_id,
            "step": plan.step_id,
            "owner": plan.owner_id,
            "amount": amount,
            "probability": plan.probability,
            "expected_close_date": to_json(row.expected_close_date),
            "tags": tag_ids,
        }
        events.append((pk, plan.created_at, EventKind.CREATED, {}, data))
        if second is not None:
            events.append((pk, plan.closed_at or plan.created_at, second[0], second[1], {}))
    event_ids = _reserve_ids(OpportunityEvent, len(events))
    event_rows = [
        (event_id, opp_id, actor_id, stamp(at), kind, as_json(changes), as_json(data))
        for event_id, (opp_id, at, kind, changes, data) in zip(event_ids, events, strict=True)
    ]
    earliest = min(at for _opp, at, *_rest in events)
    if earliest < now:
        past_changed.send(sender=None, since=earliest)
    with connection.cursor() as cursor:
        _insert("opportunity").run(cursor, opportunities)
        _insert("tag").run(cursor, tag_links)
        _insert("contact").run(cursor, contacts)
        _insert("event").run(cursor, event_rows)
    announce_many(
        event_announcement(event_id, opp_id, actor_id, kind, changes, data)
        for event_id, (opp_id, _at, kind, changes, data) in zip(event_ids, events, strict=True)
    )
    return ids


def _create_missing(plans: list[_Plan], ctx: ImportContext, report: ImportReport) -> None:
    """Create the client folders and tags these plans need, once each.

    Tags through `_tag`, as `opportunity_create` does. Client folders in bulk: they were
    checked like `client_create` checks (see `ImportContext.client_key`), and each is
    announced and indexed as it announces and indexes.
    """
    wanted: dict[str, ImportRow] = {}
    for plan in plans:
        key = plan.client_key
        if key.startswith("new:") and ctx.new_clients.get(key) is None:
            wanted.setdefault(key, plan.row)
        for tag_key in plan.tag_keys:
            if tag_key not in ctx.tags:
                tag = _tag(plan.tag_names[tag_key])
                ctx.tags[tag_key] = tag
                report.new_tags.append(tag.name)
    if not wanted:
        return
    ids = _reserve_ids(Client, len(wanted))
    stamp = _Values().stamp(timezone.now())
    rows = []
    announcements: list[Announcement] = []
    for pk, (key, row) in zip(ids, wanted.items(), strict=True):
        name = row.client.strip()
        rows.append((pk, name, "", "", "", "", "", "", "", "", row.client_external_id, stamp))
        ctx.new_clients[key] = pk
        report.new_clients.append(name)
        announcements.append(("client.created", ctx.actor.pk, pk, {"name": name}))
    with connection.cursor() as cursor:
        _insert("client").run(cursor, rows)
    announce_many(announcements)


def _note_missing(plans: list[_Plan], ctx: ImportContext, report: ImportReport) -> None:
    """A dry run's account of the client folders and tags a real run would create."""
    for plan in plans:
        if plan.client_key.startswith("new:") and plan.client_key not in ctx.new_clients:
            ctx.new_clients[plan.client_key] = None
            report.new_clients.append(plan.row.client.strip())
        for tag_key in plan.tag_keys:
            if tag_key not in ctx.tags and tag_key not in ctx.new_tags:
                ctx.new_tags.add(tag_key)
                report.new_tags.append(plan.tag_names[tag_key])


# Updating by external id --------------------------------------------------------------------


def _seconds(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(microsecond=0)


Action = Callable[[Opportunity], Opportunity]


def _update_actions(row: ImportRow, opp: Opportunity, ctx: ImportContext) -> list[Action]:
    """The service calls that bring one opportunity to what the row says, in order.

    Only what the file has a column for is compared; an equal value calls no service, so an
    unchanged row gets no action at all. Each action takes the opportunity as the previous one
    left it. Raises _Rejected with every problem found.
    """
    actor = ctx.actor
    given = row.given
    errors: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    if "title" in given:
        values["title"] = _check(errors, lambda: _check_title(row.title), "title")
    if "owner" in given:
        values["owner"] = _check(errors, lambda: ctx.owner(row.owner), "owner")
    if "amount" in given and row.amount is not None:
        values["amount"] = row.amount
    if "product" in given:
        values["product"] = _check(
            errors, lambda: ctx.named(ctx.products, row.product, "product", _NO_PRODUCT)
        )
    for name in ("expected_close_date", "next_action_note", "description"):
        if name in given:
            values[name] = getattr(row, name)
    if "fields" in given:
        merged = {} if row.fields_complete else dict(opp.fields)
        merged.update(row.fields)
        try:
            values["fields"] = _clean_fields(merged, ctx)
        except _Rejected as rejected:
            errors.extend(rejected.errors)
    new_client = ""
    if "client" in given or "client_external_id" in given:
        key = ""
        if row.client or row.client_external_id:
            key = _check(errors, lambda: ctx.client_key(row.client, row.client_external_id))
        if key and key.startswith("new:"):
            new_client = key
        else:
            values["client"] = Client(pk=int(key)) if key else None
    step = opp.step
    if "pipeline" in given or "step" in given:
        pipeline_name = row.pipeline if "pipeline" in given else opp.pipeline.name
        places = _check(errors, lambda: ctx.pipeline_and_step(pipeline_name, row.step), "step")
        if places:
            pipeline, step = places
            if pipeline.pk != opp.pipeline_id:
                errors.append(
                    ("pipeline", _("An import cannot move an opportunity to another pipeline."))
                )
            if not row.step:
                step = opp.step
    target = row.status if "status" in given and row.status else opp.status
    if target == Status.STANDBY and opp.status != Status.STANDBY and row.next_action_at is None:
        errors.append(("next_action_at", _("Say until when it is on standby.")))
    if errors:
        raise _Rejected(errors)

    actions: list[Action] = []
    # What the opportunity will be like when each action runs.
    status, next_at, probability = opp.status, opp.next_action_at, opp.probability
    if status in CLOSED_STATUSES and _closing_differs(row, opp, target):
        actions.append(
            lambda o: opportunity_reopen(
                opportunity=o.pk, actor=actor, next_action_at=row.next_action_at
            )
        )
        status, next_at = Status.TODO, row.next_action_at
    changed = {k: v for k, v in values.items() if _differs(opp, k, v)}
    if changed or new_client:

        def update(o: Opportunity) -> Opportunity:
            if new_client:
                changed["client"] = Client(pk=_new_client(row, new_client, ctx))
            return opportunity_update(opportunity=o.pk, actor=actor, version=o.version, **changed)

        actions.append(update)
    if step.pk != opp.step_id:
        actions.append(lambda o: opportunity_move(opportunity=o.pk, step=step, actor=actor))
        probability = probability if opp.probability_is_manual else step.probability
    wanted = row.probability
    if "probability" in given and wanted is not None and wanted != probability:
        actions.append(
            lambda o: opportunity_set_probability(opportunity=o.pk, probability=wanted, actor=actor)
        )
    moment = row.next_action_at if "next_action_at" in given else None
    if target == Status.TODO and (
        status != Status.TODO or (moment is not None and _seconds(moment) != _seconds(next_at))
    ):
        at = moment or timezone.now()
        actions.append(
            lambda o: opportunity_plan_next_action(
                opportunity=o.pk, at=at, actor=actor, note=o.next_action_note
            )
        )
    elif target == Status.STANDBY and moment is not None:
        until = timezone.localdate(moment)
        if status != Status.STANDBY or next_at != _standby_datetime(until):
            actions.append(
                lambda o: opportunity_standby(
                    opportunity=o.pk, until=until, actor=actor, note=o.next_action_note
                )
            )
    elif target in CLOSED_STATUSES and status not in CLOSED_STATUSES:
        actions.append(lambda o: _close(row, o, target, ctx))
    if "tags" in given:
        actions.extend(_tag_actions(row, opp, ctx))
    if "contacts" in given:
        actions.extend(_contact_actions(row, opp, ctx))
    return actions


def _new_client(row: ImportRow, key: str, ctx: ImportContext) -> int:
    """The folder an update asks for and this import creates (once), as `client_create` does."""
    pk = ctx.new_clients.get(key) or ctx.pending_clients.get(key)
    if pk is None:
        name = row.client.strip()
        pk = client_create(actor=ctx.actor, name=name, external_id=row.client_external_id).pk
        ctx.pending_clients[key] = pk  # kept only if the row's savepoint is
    return pk


def _closing_differs(row: ImportRow, opp: Opportunity, target: str) -> bool:
    if target != opp.status:
        return True
    if (
        "won_amount" in row.given
        and row.won_amount is not None
        and row.won_amount != opp.won_amount
    ):
        return True
    if (
        "lost_reason" in row.given
        and row.lost_reason
        and opp.lost_reason is not None
        and _fold(row.lost_reason) != _fold(opp.lost_reason.name)
    ):
        return True
    return (
        "closed_at" in row.given
        and row.closed_at is not None
        and _seconds(row.closed_at) != _seconds(opp.closed_at)
    )


def _close(row: ImportRow, opp: Opportunity, target: str, ctx: ImportContext) -> Opportunity:
    actor = ctx.actor
    if target == Status.WON:
        return opportunity_close_won(
            opportunity=opp.pk, actor=actor, won_amount=row.won_amount, closed_at=row.closed_at
        )
    if target == Status.LOST:
        return opportunity_close_lost(
            opportunity=opp.pk,
            actor=actor,
            reason=_lost_reason(row.lost_reason, ctx),
            note=row.lost_note,
            closed_at=row.closed_at,
        )
    return opportunity_cancel(
        opportunity=opp.pk, actor=actor, note=row.lost_note, closed_at=row.closed_at
    )


def _differs(opp: Opportunity, name: str, value: Any) -> bool:
    field_object = Opportunity._meta.get_field(name)
    current = getattr(opp, field_object.attname)  # type: ignore[union-attr]
    wanted = value.pk if isinstance(value, models.Model) else value
    return bool(current != wanted)


def _tag_actions(row: ImportRow, opp: Opportunity, ctx: ImportContext) -> list[Action]:
    """Add the row's tags the opportunity lacks and remove those the row does not list."""
    current = {_fold(tag.name): tag for tag in opp.tags.all()}
    wanted: dict[str, str] = {}
    for name in row.tags:
        key = ctx.tag_key(name)
        if key:
            wanted.setdefault(key, name.strip())  # the first spelling, as a new row would
    actions: list[Action] = []
    for key, name in wanted.items():
        if key not in current:
            # A tag made here is not cached: the row's savepoint may yet be rolled back.
            tag = ctx.tags.get(key) or name

            def add(o: Opportunity, tag: Tag | str = tag) -> Opportunity:
                tag_add(opportunity=o.pk, actor=ctx.actor, tag=tag)
                return o

            actions.append(add)
    for key, tag in current.items():
        if key not in wanted:

            def remove(o: Opportunity, tag: Tag = tag) -> Opportunity:
                tag_remove(opportunity=o.pk, actor=ctx.actor, tag=tag)
                return o

            actions.append(remove)
    return actions


def _contact_actions(row: ImportRow, opp: Opportunity, ctx: ImportContext) -> list[Action]:
    """Add the row's contacts the opportunity lacks (by name); others are left as they are."""
    present = {_fold(c.name) for c in opp.contacts.all()}
    actions: list[Action] = []
    for contact in row.contacts:
        name = _fold(contact.get("name", ""))
        if name not in present:
            present.add(name)

            def add(o: Opportunity, contact: dict[str, str] = contact) -> Opportunity:
                contact_add(opportunity=o.pk, actor=ctx.actor, **contact)
                return o

            actions.append(add)
    return actions


# The batch ----------------------------------------------------------------------------------


def opportunity_import_batch(
    *,
    actor: User,
    rows: Sequence[ImportRow],
    dry_run: bool = False,
    context: ImportContext | None = None,
) -> ImportReport:
    """Create, update or reject each row (all or nothing per row); a dry run writes nothing.

    Rows with an external id already in the database update that opportunity, which must be
    one the actor sees and may edit. Pass the same `context` to every batch of one file.
    """
    ctx = context or ImportContext(actor)
    if ctx.actor.pk != actor.pk:
        raise ValueError("the context belongs to another actor")
    require_importer(actor)
    now = timezone.now()
    today = timezone.localdate(now)
    report = ImportReport()
    results: dict[int, RowResult] = {}
    existing = _existing(rows, ctx)
    plans: list[_Plan] = []
    updates: list[tuple[ImportRow, Opportunity]] = []
    for row in rows:
        try:
            if row.external_id in existing:
                updates.append((row, _updatable(existing[row.external_id], ctx)))
            else:
                plans.append(_plan_create(row, ctx, now, today))
                if row.external_id:
                    ctx.external_ids.setdefault(row.external_id, row.number)
        except _Rejected as rejected:
            results[row.number] = RowResult(row.number, REJECTED, row.title, None, rejected.errors)
        except (SalesRuleError, PermissionDenied) as error:
            results[row.number] = RowResult(
                row.number,
                REJECTED,
                row.title,
                None,
                [(getattr(error, "field", "") or "", _message(error))],
            )
    if dry_run:
        _note_missing(plans, ctx, report)
        for plan in plans:
            results[plan.row.number] = RowResult(plan.row.number, CREATED, plan.title)
    elif plans:
        _create_all(plans, ctx, now, report, results)
    for row, opp in updates:
        results[row.number] = _update_one(row, opp, ctx, dry_run)
    report.rows.extend(results[row.number] for row in rows)
    return report


def _create_all(
    plans: list[_Plan],
    ctx: ImportContext,
    now: datetime,
    report: ImportReport,
    results: dict[int, RowResult],
) -> None:
    """Write the plans in one go; if the database refuses, row by row so only bad rows fail."""
    try:
        ids = _attempt(plans, ctx, now, report)
    except (DatabaseError, SalesRuleError):
        for plan in plans:
            number = plan.row.number
            try:
                (pk,) = _attempt([plan], ctx, now, report)
            except (DatabaseError, SalesRuleError) as error:
                results[number] = RowResult(
                    number, REJECTED, plan.title, None, [("", _message(error))]
                )
            else:
                results[number] = RowResult(number, CREATED, plan.title, pk)
        return
    for pk, plan in zip(ids, plans, strict=True):
        results[plan.row.number] = RowResult(plan.row.number, CREATED, plan.title, pk)


def _attempt(
    plans: list[_Plan], ctx: ImportContext, now: datetime, report: ImportReport
) -> list[int]:
    """One all-or-nothing write; if it fails, forget the folders and tags it had created."""
    saved = (dict(ctx.new_clients), dict(ctx.tags), len(report.new_clients), len(report.new_tags))
    try:
        with transaction.atomic():
            _create_missing(plans, ctx, report)
            ids = _write_creates(plans, ctx, now)
            ctx.created += len(ids)
            if ctx.created >= ctx.statistics_at:
                # Before the commit, whose follow-up writes (search index, insights) read
                # the new rows by index only if the planner knows how many there are.
                refresh_planner_statistics()
                ctx.statistics_at = 2 * ctx.created
            return ids
    except (DatabaseError, SalesRuleError):
        ctx.new_clients, ctx.tags = saved[0], saved[1]
        del report.new_clients[saved[2] :], report.new_tags[saved[3] :]
        raise


def _existing(rows: Sequence[ImportRow], ctx: ImportContext) -> dict[str, Opportunity | None]:
    """The opportunities these rows' external ids name; None for one the actor may not change.

    An external id already used by several opportunities is also None (it names no one).
    """
    wanted = {row.external_id for row in rows if row.external_id}
    if not wanted:
        return {}
    # No ORDER BY: sorting by the model's default would walk another index than external id's.
    owners = dict(
        Opportunity.objects.filter(external_id__in=wanted)
        .order_by()
        .values_list("pk", "external_id")
    )
    if not owners:  # the usual first import: one query, nothing to update
        return {}
    visible = set(
        visible_opportunities(ctx.actor).filter(pk__in=list(owners)).values_list("pk", flat=True)
    )
    found: dict[str, Opportunity | None] = {}
    for opp in (
        Opportunity.objects.filter(pk__in=list(owners))
        .select_related("pipeline", "step", "lost_reason")
        .prefetch_related("tags", "contacts")
    ):
        if opp.external_id in found or opp.pk not in visible:
            found[opp.external_id] = None
        else:
            found[opp.external_id] = opp
    return found


def _updatable(opp: Opportunity | None, ctx: ImportContext) -> Opportunity:
    if opp is None or not ctx.can_edit(opp):
        raise _Rejected(
            [("external_id", _("This external id belongs to an opportunity you cannot change."))]
        )
    return opp


def _update_one(row: ImportRow, opp: Opportunity, ctx: ImportContext, dry_run: bool) -> RowResult:
    """Play the row's update in a savepoint: kept, or rolled back for a dry run or a failure."""
    if row.external_id in ctx.external_ids and ctx.external_ids[row.external_id] != row.number:
        return RowResult(
            row.number,
            REJECTED,
            row.title,
            opp.pk,
            [
                (
                    "external_id",
                    _("Row %(row)d has the same external id.")
                    % {"row": ctx.external_ids[row.external_id]},
                )
            ],
        )
    ctx.external_ids.setdefault(row.external_id, row.number)
    try:
        actions = _update_actions(row, opp, ctx)
    except _Rejected as rejected:
        return RowResult(row.number, REJECTED, row.title, opp.pk, rejected.errors)
    except (SalesRuleError, PermissionDenied) as error:
        return _refused(row, opp, error)
    if not actions:
        return RowResult(row.number, UNCHANGED, row.title or opp.title, opp.pk)
    ctx.pending_clients = {}
    try:
        with transaction.atomic():
            current = opp
            for action in actions:
                current = action(current)
            if dry_run:
                transaction.set_rollback(True)
    except (SalesRuleError, PermissionDenied, DatabaseError) as error:
        return _refused(row, opp, error)
    for key, pk in ctx.pending_clients.items():
        ctx.new_clients[key] = None if dry_run else pk
    return RowResult(row.number, UPDATED, row.title or opp.title, opp.pk)


def _refused(row: ImportRow, opp: Opportunity, error: Exception) -> RowResult:
    field_name = getattr(error, "field", "") or ""
    return RowResult(row.number, REJECTED, row.title, opp.pk, [(field_name, _message(error))])


# Client folders -----------------------------------------------------------------------------


def client_import_batch(
    *,
    actor: User,
    rows: Sequence[ClientRow],
    dry_run: bool = False,
    context: ImportContext | None = None,
) -> ImportReport:
    """Create or update client folders, by external id, else by name; a dry run writes nothing.

    A row with an external id matches by name only a folder that has no external id yet.
    """
    ctx = context or ImportContext(actor)
    require_importer(actor)
    ctx.read_clients()
    report = ImportReport()
    for row in rows:
        values = {k: (v or "").strip() for k, v in row.values.items() if k in CLIENT_FIELDS}
        try:
            with transaction.atomic():
                action, client = _client_row(values, ctx, dry_run)
                if dry_run:
                    transaction.set_rollback(True)
        except (SalesRuleError, PermissionDenied, DatabaseError) as error:
            field_name = getattr(error, "field", "") or ""
            report.rows.append(
                RowResult(
                    row.number,
                    REJECTED,
                    values.get("name", ""),
                    None,
                    [(field_name, _message(error))],
                )
            )
            continue
        if action == CREATED:
            report.new_clients.append(client.name)
            _remember_client(ctx, client, values, dry_run)
        report.rows.append(RowResult(row.number, action, client.name, client.pk))
    return report


def _client_row(values: dict[str, str], ctx: ImportContext, dry_run: bool) -> tuple[str, Client]:
    name = values.get("name", "")
    external_id = values.get("external_id", "")
    matches = ctx.clients_by_external.get(external_id, []) if external_id else []
    if not matches and name:
        matches = [
            pk
            for pk in ctx.clients_by_name.get(_fold(name), [])
            if not external_id or not ctx.client_external.get(pk)
        ]
    if len(matches) > 1:
        raise SalesRuleError(
            _("Several client folders match %(name)s; use an external id column.")
            % {"name": external_id or name},
            field="name",
        )
    if not matches:
        if dry_run:
            client = Client(**{"name": name, **values})
            _clean(client)
            return CREATED, client
        return CREATED, client_create(actor=ctx.actor, **{"name": name, **values})
    match = matches[0]
    planned = ctx.planned_clients.get(match)
    if planned is not None:  # created earlier in this dry run
        before = planned
        client = Client(**planned)
    else:
        client = Client.objects.get(pk=match)
        before = {k: getattr(client, k) for k in values}
    changes = {k: v for k, v in values.items() if before.get(k, "") != v}
    if "name" in changes and (not values["name"] or _fold(values["name"]) == _fold(before["name"])):
        del changes["name"]  # a folder found by its name keeps its own spelling
    if not changes:
        return UNCHANGED, client
    if planned is not None:
        planned.update(changes)
        return UPDATED, client
    return UPDATED, client_update(client=client, actor=ctx.actor, **changes)


def _remember_client(
    ctx: ImportContext, client: Client, values: dict[str, str], dry_run: bool
) -> None:
    """Let later rows of this import find a folder it created (or, dry, would create)."""
    pk = client.pk
    if dry_run:
        pk = -len(ctx.planned_clients) - 1  # a stand-in id, never written
        ctx.planned_clients[pk] = {"name": client.name, **values}
    ctx.clients_by_name.setdefault(_fold(client.name), []).append(pk)
    if client.external_id:
        ctx.clients_by_external.setdefault(client.external_id, []).append(pk)
        ctx.client_external[pk] = client.external_id


def rows_in_batches(rows: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Rows in lists of `size` (the last one shorter)."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
