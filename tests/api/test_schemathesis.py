"""Every operation of the OpenAPI document, fuzzed in-process by schemathesis.

The Django app is called through WSGI with an admin's token against a small dataset; ids in
paths and bodies are steered onto that dataset's objects (a negative id stays unknown), so the
requests reach the services and not only the 404s. Every built-in check must pass: no server
error, only declared status codes, content types and headers, responses matching their
schemas, invalid input refused and valid input accepted.

Valid-looking input may still be refused for what the schema cannot say, so these statuses
also count as an answer to valid input: 412 and 428 (If-Match, stale or missing), and 422
for an id naming nothing, a date outside 1900-2999, or a field combination the schema allows
but the endpoint does not (log or plan an activity, not both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from opportuna.accounts.tokens import api_token_create
from opportuna.sales import services
from opportuna.sales.api._common import content_etag
from opportuna.sales.models import ActivityType, Client, Contact, Opportunity, Tag
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    LostReasonFactory,
    PipelineFactory,
    ProductFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

EXAMPLES = 12  # per operation and mode: enough to find what these schemas allow

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"deterministic": True, "database": "none"},
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422", "428"]
            },
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "409", "412", "422", "428"]
            },
        },
    }
)


@dataclass
class Dataset:
    token: str
    ids: dict[str, list[int]] = field(default_factory=dict)


def _build() -> Dataset:
    cast = make_cast()
    admin = cast.admin
    renewals = PipelineFactory(name="Renewals")
    steps = list(cast.pipeline.steps.order_by("position"))
    reason = LostReasonFactory(name="Price")
    product = ProductFactory(name="Website", unit_price=150_00)
    FieldDefinitionFactory(label="Budget", key="budget", kind="number")
    clients = [ClientFactory(name=name) for name in ("Acme", "Globex", "Initech")]
    call = ActivityType.objects.get(key="call")
    opportunities = []
    for number, owner in enumerate([cast.owner, cast.teammate, cast.other, cast.manager, admin]):
        opportunities.append(
            services.opportunity_create(
                actor=admin,
                title=f"Deal {number}",
                pipeline=cast.pipeline,
                step=steps[number % len(steps)],
                owner=owner,
                client=clients[number % len(clients)],
                amount=1000_00 * (number + 1),
                product=product,
                expected_close_date=timezone.localdate() + timedelta(days=30 * number),
                tags=["vip"],
                contacts=[{"name": "Anna Rossi", "email": "anna@example.com"}],
            )
        )
    first, second, third = opportunities[:3]
    services.opportunity_close_won(opportunity=second, actor=admin)
    services.opportunity_close_lost(opportunity=third, actor=admin, reason=reason)
    comment = services.comment_add(opportunity=first, actor=admin, body="Call back in May")
    done = services.activity_log(opportunity=first, actor=admin, type=call, note="Intro")
    planned = services.activity_plan(
        opportunity=first, actor=admin, type=call, due_at=timezone.now() + timedelta(days=2)
    )
    draft = services.proposal_create(
        opportunity=first,
        actor=admin,
        scope="Redesign",
        lines=[{"product": product, "quantity": Decimal(2)}],
    )
    sent = services.proposal_create(
        opportunity=first, actor=admin, lines=[{"description": "Hosting", "unit_price": 50_00}]
    )
    services.proposal_send(proposal=sent, actor=admin)
    _token, raw = api_token_create(actor=admin, user=admin, name="schemathesis")
    other_token, _raw = api_token_create(actor=admin, user=admin, name="spare")
    users = [cast.owner, cast.teammate, cast.other, cast.manager, admin]
    return Dataset(
        token=raw,
        ids={
            "opportunity": [o.pk for o in opportunities],
            "pipeline": [cast.pipeline.pk, renewals.pk],
            "step": [s.pk for s in steps],
            "owner": [u.pk for u in users],
            "user": [u.pk for u in users],
            "managers": [cast.manager.pk, admin.pk],
            "client": [c.pk for c in clients],
            "into": [c.pk for c in clients],
            "product": [product.pk],
            "reason": [reason.pk],
            "type": list(ActivityType.objects.values_list("pk", flat=True)),
            "tag": list(Tag.objects.values_list("pk", flat=True)),
            "comment": [comment.pk],
            "activity": [done.pk, planned.pk],
            "contact": [c.pk for o in opportunities for c in o.contacts.all()],
            "contacts": [c.pk for c in first.contacts.all()],
            "proposal": [draft.pk, sent.pk],
            "token": [other_token.pk],
            "team": [cast.team_a.pk, cast.team_b.pk],
        },
    )


def _steer(value: Any, ids: list[int]) -> Any:
    """A generated id onto one of the dataset's (negative ones stay unknown)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and ids:
        return ids[value % len(ids)]
    return value


def _steer_body(body: Any, ids: dict[str, list[int]]) -> Any:
    if isinstance(body, list):
        return [_steer_body(item, ids) for item in body]
    if not isinstance(body, dict):
        return body
    steered = {}
    for key, value in body.items():
        if key in ids and isinstance(value, list):
            steered[key] = [_steer(item, ids[key]) for item in value]
        elif key in ids:
            steered[key] = _steer(value, ids[key])
        else:
            steered[key] = _steer_body(value, ids)
    return steered


def _current_etag(path_parameters: dict[str, Any]) -> str | None:
    """The ETag a read of the object in the path would answer now, if it exists."""
    path_parameters = {k: v for k, v in path_parameters.items() if type(v) is int and v < 2**63}
    if "opportunity_id" in path_parameters:
        found = Opportunity.objects.filter(pk=path_parameters["opportunity_id"]).first()
        return None if found is None else f'W/"{found.version}"'
    for name, model in (("client_id", Client), ("contact_id", Contact)):
        if name in path_parameters:
            found = model.objects.filter(pk=path_parameters[name]).first()
            return None if found is None else content_etag(found)
    return None


@pytest.fixture
def dataset() -> Dataset:
    return _build()


@pytest.fixture
def wsgi_app():
    # Django's test client does the same: closing "old" connections at each request would
    # close the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _quiet_client_errors(caplog):
    # Thousands of refused requests are the point here; only server errors are worth a line.
    caplog.set_level(logging.ERROR, logger="django.request")


@pytest.fixture
def api_schema(wsgi_app, settings):
    settings.ALLOWED_HOSTS = ["*"]
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_app, config=CONFIG)


def _fuzz(
    operation: Any, mode: GenerationMode, dataset: Dataset, answered: dict[str, set[int]]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.path_parameters = {
            name: _steer(value, dataset.ids.get(name.removesuffix("_id"), []))
            for name, value in (case.path_parameters or {}).items()
        }
        if isinstance(case.body, dict | list):
            case.body = _steer_body(case.body, dataset.ids)
        headers = case.headers or {}
        if isinstance(headers.get("If-Match"), str) and len(headers["If-Match"]) % 2 == 0:
            # Half the time, the ETag of a fresh read: an update can then go through.
            etag = _current_etag(case.path_parameters)
            if etag is not None:
                case.headers = {**headers, "If-Match": etag}
        response = case.call_and_validate(headers={"Authorization": f"Bearer {dataset.token}"})
        answered.setdefault(operation.label, set()).add(response.status_code)

    run()


def test_every_operation_conforms_to_the_openapi_document(api_schema, dataset):
    failures: dict[str, BaseException] = {}
    answered: dict[str, set[int]] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, dataset, answered)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all are reported
                failures[f"{mode.value} {operation.label}"] = exc

    assert len(operations) > 50
    # The run reached the services, not only the validation: most operations succeeded.
    succeeded = [label for label, codes in answered.items() if any(c < 300 for c in codes)]
    assert len(succeeded) >= 0.8 * len(operations), sorted(set(answered) - set(succeeded))
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
