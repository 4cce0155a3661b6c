"""A handful of opportunities played through the real services, so every kind of event exists.

The services stamp times with `timezone.now()`; the story runs them on a simulated clock
(`timezone.now` patched to a moment in the past, then the next one), so its timelines read
like months of work instead of one second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from unittest import mock

from django.utils import timezone

from opportuna.sales.demo import vocabulary as words
from opportuna.sales.demo.configuration import DIRECT, Cast
from opportuna.sales.models import Opportunity
from opportuna.sales.services import (
    activity_complete,
    activity_log,
    activity_plan,
    client_create,
    client_merge,
    comment_add,
    comment_pin,
    comment_unpin,
    contact_add,
    contact_remove,
    contact_reorder,
    contact_update,
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_duplicate,
    opportunity_move,
    opportunity_plan_next_action,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_standby,
    opportunity_update,
    proposal_accept,
    proposal_create,
    proposal_decline,
    proposal_revise,
    proposal_send,
    tag_add,
    tag_remove,
)

CLIENT_NAMES = [
    "Rossi Meccanica S.p.A.",
    "Rossi Meccanica",
    "Blue Harbor Foods Ltd",
    "Comune di Vimercate",
    "Pasticceria Dolce Vita S.r.l.",
]


class Story:
    def __init__(self, cast: Cast, today: date) -> None:
        self.cast = cast
        self.today = today
        self.steps = cast.steps[DIRECT]
        self.pipeline = cast.pipelines[DIRECT]
        self.types = cast.activity_types
        self.products = {p.name: p for p in cast.products}
        self.users = cast.users
        self.last: datetime | None = None

    def moment(self, days_ago: int, hour: int = 10, minute: int = 0) -> datetime:
        """A local working-day time `days_ago` days back (negative: ahead), in UTC."""
        day = self.today - timedelta(days=days_ago)
        if day.weekday() >= 5:
            day -= timedelta(days=day.weekday() - 4)
        local = timezone.make_aware(datetime.combine(day, time(hour, minute)))
        return local.astimezone(UTC)

    @contextmanager
    def clock(self, days_ago: int, hour: int = 10, minute: int = 0) -> Iterator[None]:
        """Run the services as if it were that moment (always after the scene's last one)."""
        now = self.moment(days_ago, hour, minute)
        if self.last is not None and now <= self.last:
            now = self.last + timedelta(minutes=45)  # two weekend days moved to one Friday
        self.last = now
        with mock.patch.object(timezone, "now", lambda: now):
            yield

    def fields(
        self,
        contacts: list[dict[str, str]],
        *,
        source: str,
        sector: str,
        employees: int,
        website: str,
    ) -> dict[str, str]:
        return self.cast.field_values(
            contacts=contacts, source=source, sector=sector, employees=employees, website=website
        )

    def tell(self) -> int:
        """Play every scene; return how many opportunities they made."""
        scenes = [
            self.proposals_then_won_then_upsell,
            self.demo_first_then_lost,
            self.cancelled_reopened_standby,
            self.agency_contacts_and_tags,
            self.duplicate_client_folder_merged,
        ]
        for scene in scenes:
            self.last = None
            scene()
        return 6

    def proposals_then_won_then_upsell(self) -> None:
        """Two visits, a demo, a declined then an accepted proposal, won; an upsell later."""
        luca, marco = self.users["luca"], self.users["marco"]
        contacts = [
            {
                "name": "Marco Rossi",
                "role": "Amministratore delegato",
                "email": "marco.rossi@rossi-meccanica.example",
                "phone": "+39 035 412 7788",
            },
            {
                "name": "Anna Colombo",
                "role": "Responsabile IT",
                "email": "anna.colombo@rossi-meccanica.example",
                "phone": "+39 035 412 7790",
            },
        ]
        with self.clock(300, 9, 10):
            client = client_create(
                actor=luca,
                name="Rossi Meccanica S.p.A.",
                vat_number="IT03124560161",
                email="info@rossi-meccanica.example",
                phone="+39 035 412 7700",
                website="https://www.rossi-meccanica.example",
                address="Via dell'Industria 14",
                city="Bergamo",
                country="Italia",
            )
            opp = opportunity_create(
                actor=luca,
                title="Rossi Meccanica – CRM Cloud 40 utenti",
                pipeline=self.pipeline,
                client=client,
                amount=40 * 480_00,
                product=self.products["CRM Cloud licence"],
                expected_close_date=self.today - timedelta(days=230),
                next_action_at=self.moment(298, 10),
                description="40 commerciali lavorano su Excel.\nVogliono il forecast mensile.",
                fields=self.fields(
                    contacts,
                    source="Fiera",
                    sector="Manifattura",
                    employees=320,
                    website="https://www.rossi-meccanica.example",
                ),
                tags=["Strategico", "Fiera SMAU"],
                contacts=contacts,
            )
        with self.clock(298, 10, 5):
            activity_log(
                opportunity=opp,
                actor=luca,
                type=self.types["call"],
                note="Prima telefonata: 40 commerciali, nessun CRM",
            )
            opportunity_move(opportunity=opp, step=self.steps[1], actor=luca)
            opportunity_plan_next_action(
                opportunity=opp, at=self.moment(290, 11), actor=luca, note="Visita in sede"
            )
        with self.clock(290, 11):
            activity_log(
                opportunity=opp,
                actor=luca,
                type=self.types["visit"],
                note="Visita in sede con la direzione",
            )
            opportunity_move(opportunity=opp, step=self.steps[2], actor=luca)
            comment = comment_add(
                opportunity=opp,
                actor=luca,
                body="Decide il CFO, Paolo Galli: coinvolgerlo prima della demo.",
            )
        with self.clock(283, 15):
            activity_log(
                opportunity=opp,
                actor=luca,
                type=self.types["visit"],
                note="Seconda visita, con il CFO",
            )
            contact_add(
                opportunity=opp,
                actor=luca,
                name="Paolo Galli",
                role="CFO",
                email="paolo.galli@rossi-meccanica.example",
            )
        with self.clock(276, 10):
            activity_log(
                opportunity=opp, actor=luca, type=self.types["demo"], note="Demo con i loro dati"
            )
            opportunity_move(opportunity=opp, step=self.steps[3], actor=luca)
            comment_pin(comment=comment, actor=marco)
        with self.clock(270, 9):
            first = proposal_create(
                opportunity=opp,
                actor=luca,
                scope="CRM Cloud per 40 utenti, avviamento e formazione.",
                lines=[
                    {"product": self.products["CRM Cloud licence"], "quantity": 40},
                    {"product": self.products["Implementation days"], "quantity": 8},
                    {"product": self.products["Training"], "quantity": 2},
                ],
                valid_until=self.today - timedelta(days=240),
            )
            proposal_send(proposal=first, actor=luca)
            opportunity_move(opportunity=opp, step=self.steps[4], actor=luca)
        with self.clock(262, 16):
            proposal_decline(proposal=first, actor=luca)
            second = proposal_revise(
                proposal=first,
                actor=luca,
                lines=[
                    {"product": self.products["CRM Cloud licence"], "quantity": 40, "discount": 10},
                    {"product": self.products["Implementation days"], "quantity": 6},
                    {"product": self.products["Training"], "quantity": 2},
                ],
            )
            proposal_send(proposal=second, actor=luca)
        with self.clock(255, 11):
            proposal_accept(proposal=second, actor=luca)
            opportunity_move(opportunity=opp, step=self.steps[5], actor=luca)
            opportunity_set_probability(opportunity=opp, probability=95, actor=marco)
        with self.clock(250, 12):
            opportunity_close_won(opportunity=opp, actor=luca)
        with self.clock(40, 10):
            upsell = opportunity_duplicate(
                opportunity=opp,
                actor=luca,
                title="Rossi Meccanica – Espansione CRM Cloud 20 utenti",
                amount=20 * 480_00,
                expected_close_date=self.today + timedelta(days=45),
                next_action_at=self.moment(38, 9),
            )
        with self.clock(38, 9):
            activity_log(opportunity=upsell, actor=luca, type=self.types["call"])
            opportunity_move(opportunity=upsell, step=self.steps[1], actor=luca)
            visit_at = self.moment(-2, 10)
            activity_plan(
                opportunity=upsell,
                actor=luca,
                type=self.types["visit"],
                due_at=visit_at,
                note="Presentare il piano di espansione",
            )
            opportunity_plan_next_action(
                opportunity=upsell, at=visit_at, actor=luca, note="Visita: piano di espansione"
            )

    def demo_first_then_lost(self) -> None:
        """A demo before any visit, then lost to a competitor: the pattern that rarely wins."""
        tom = self.users["tom"]
        contacts = [
            {
                "name": "Emily Parker",
                "role": "Head of Operations",
                "email": "emily.parker@blue-harbor-foods.example",
                "phone": "+44 20 7946 0321",
            }
        ]
        with self.clock(200, 14):
            client = client_create(
                actor=tom,
                name="Blue Harbor Foods Ltd",
                city="London",
                country="United Kingdom",
                website="https://www.blue-harbor-foods.example",
            )
            opp = opportunity_create(
                actor=tom,
                title="Blue Harbor Foods – CRM Cloud 15 utenti",
                pipeline=self.pipeline,
                client=client,
                amount=15 * 480_00,
                product=self.products["CRM Cloud licence"],
                expected_close_date=self.today - timedelta(days=160),
                next_action_at=self.moment(197, 15),
                fields=self.fields(
                    contacts,
                    source="LinkedIn",
                    sector="Commercio",
                    employees=85,
                    website="https://www.blue-harbor-foods.example",
                ),
                contacts=contacts,
            )
        with self.clock(197, 15):
            activity_log(
                opportunity=opp,
                actor=tom,
                type=self.types["demo"],
                note="Live demo of the pipeline board",
            )
            opportunity_move(opportunity=opp, step=self.steps[3], actor=tom)
        with self.clock(190, 9):
            activity_log(
                opportunity=opp, actor=tom, type=self.types["email"], note="Sent the price list"
            )
        with self.clock(175, 17):
            opportunity_close_lost(
                opportunity=opp,
                actor=tom,
                reason=self.cast.lost_reasons["Chose a competitor"],
                note="Went with a cheaper vendor",
            )

    def cancelled_reopened_standby(self) -> None:
        """A public tender suspended (cancelled), reopened months later, now on standby."""
        chiara = self.users["chiara"]
        contacts = [
            {
                "name": "Laura Testa",
                "role": "Responsabile amministrativo",
                "email": "laura.testa@comune-vimercate.example",
                "phone": "+39 039 665 1201",
            }
        ]
        with self.clock(160, 10):
            client = client_create(
                actor=chiara, name="Comune di Vimercate", city="Vimercate", country="Italia"
            )
            opp = opportunity_create(
                actor=chiara,
                title="Comune di Vimercate – Formazione uffici (3 sessioni)",
                pipeline=self.pipeline,
                client=client,
                amount=3 * 1_500_00,
                product=self.products["Training"],
                expected_close_date=self.today - timedelta(days=100),
                next_action_at=self.moment(158, 9),
                fields=self.fields(
                    contacts,
                    source="Campagna email",
                    sector="Pubblica amministrazione",
                    employees=240,
                    website="https://www.comune-vimercate.example",
                ),
                tags=["Pubblica amministrazione"],
                contacts=contacts,
            )
        with self.clock(158, 9):
            activity_log(
                opportunity=opp,
                actor=chiara,
                type=self.types["info_request"],
                note="Richiesta dal sito",
            )
            opportunity_move(opportunity=opp, step=self.steps[1], actor=chiara)
        with self.clock(130, 12):
            opportunity_cancel(opportunity=opp, actor=chiara, note="Bando sospeso")
        with self.clock(30, 9):
            opportunity_reopen(opportunity=opp, actor=chiara, next_action_at=self.moment(28, 10))
        with self.clock(28, 10):
            visit = activity_plan(
                opportunity=opp,
                actor=chiara,
                type=self.types["visit"],
                due_at=self.moment(24, 11),
                note="Incontro con l'assessore",
            )
        with self.clock(24, 12):
            activity_complete(activity=visit, actor=chiara)
            opportunity_move(opportunity=opp, step=self.steps[2], actor=chiara)
        with self.clock(23, 9):
            opportunity_standby(
                opportunity=opp,
                until=self.today + timedelta(days=30),
                actor=chiara,
                note="Attendono la delibera di giunta",
            )

    def agency_contacts_and_tags(self) -> None:
        """A media agency buys for its end client: tags, contacts edited, next action today."""
        elena, sarah = self.users["elena"], self.users["sarah"]
        agency = words.AGENCY_TAG
        contacts = [
            {
                "name": "Roberta Villa",
                "role": f"Account – {agency}",
                "email": "roberta.villa@agenziamedianord.example",
                "phone": "+39 02 8725 4410",
            },
            {
                "name": "Sara Fontana",
                "role": "Titolare",
                "email": "sara.fontana@pasticceria-dolce-vita.example",
                "phone": "+39 0541 220 310",
            },
            {"name": "Stefano Gallo", "role": "Commercialista", "email": "", "phone": ""},
        ]
        website = "https://www.pasticceria-dolce-vita.example"
        with self.clock(60, 11):
            client = client_create(
                actor=elena,
                name="Pasticceria Dolce Vita S.r.l.",
                city="Rimini",
                country="Italia",
                website=website,
            )
            opp = opportunity_create(
                actor=elena,
                title="Dolce Vita (via Agenzia Media Nord) – Bundle hardware 6 postazioni",
                pipeline=self.pipeline,
                client=client,
                amount=6 * 1_200_00,
                product=self.products["Hardware bundle"],
                expected_close_date=self.today + timedelta(days=20),
                next_action_at=self.moment(55, 10),
                fields=self.fields(
                    contacts, source="Partner", sector="Commercio", employees=18, website=website
                ),
                tags=[agency, "Fiera SMAU"],
                contacts=contacts,
            )
        with self.clock(59, 9):
            tag_remove(opportunity=opp, actor=elena, tag=self.cast.tags["Fiera SMAU"])
            tag_add(opportunity=opp, actor=elena, tag="Horeca")
        with self.clock(55, 10):
            activity_log(
                opportunity=opp,
                actor=elena,
                type=self.types["visit"],
                note="Visita in negozio con l'agenzia",
            )
            opportunity_move(opportunity=opp, step=self.steps[2], actor=elena)
            roberta, sara, stefano = opp.contacts.order_by("position")
            contact_update(contact=roberta, actor=elena, role=f"Account director – {agency}")
            contact_reorder(
                opportunity=opp, actor=elena, contact_ids=[sara.pk, roberta.pk, stefano.pk]
            )
            contact_remove(contact=stefano, actor=elena)
        with self.clock(48, 15):
            activity_log(
                opportunity=opp,
                actor=elena,
                type=self.types["visit"],
                note="Sopralluogo nel secondo punto vendita",
            )
            comment = comment_add(
                opportunity=opp,
                actor=sarah,
                body="L'agenzia fattura a nome del cliente: sconto massimo 5%.",
                pinned=True,
            )
        with self.clock(45, 10):
            activity_log(
                opportunity=opp,
                actor=elena,
                type=self.types["demo"],
                note="Demo della cassa e del CRM",
            )
            opportunity_move(opportunity=opp, step=self.steps[3], actor=elena)
            version = Opportunity.objects.values_list("version", flat=True).get(pk=opp.pk)
            opportunity_update(
                opportunity=opp,
                actor=elena,
                version=version,
                amount=8 * 1_200_00,
                title="Dolce Vita (via Agenzia Media Nord) – Bundle hardware 8 postazioni",
                expected_close_date=self.today + timedelta(days=25),
            )
        with self.clock(20, 16):
            comment_unpin(comment=comment, actor=sarah)
        with self.clock(3, 17):
            opportunity_plan_next_action(
                opportunity=opp,
                at=timezone.make_aware(datetime.combine(self.today, time(10, 30))),
                actor=elena,
                note="Call con l'agenzia per l'ordine",
            )

    def duplicate_client_folder_merged(self) -> None:
        """A second folder for the same client, merged into the first by a manager."""
        davide, marco = self.users["davide"], self.users["marco"]
        with self.clock(20, 9):
            duplicate = client_create(actor=davide, name="Rossi Meccanica", city="Bergamo")
            opp = opportunity_create(
                actor=davide,
                title="Rossi Meccanica – Bundle hardware 12 postazioni",
                pipeline=self.pipeline,
                client=duplicate,
                amount=12 * 1_200_00,
                product=self.products["Hardware bundle"],
                expected_close_date=self.today + timedelta(days=60),
                next_action_at=self.moment(19, 11),
                contacts=[
                    {
                        "name": "Anna Colombo",
                        "role": "Responsabile IT",
                        "email": "anna.colombo@rossi-meccanica.example",
                    }
                ],
            )
        with self.clock(19, 11):
            activity_log(opportunity=opp, actor=davide, type=self.types["call"])
            opportunity_move(opportunity=opp, step=self.steps[1], actor=davide)
            opportunity_plan_next_action(
                opportunity=opp, at=self.moment(-6, 15), actor=davide, note="Mandare l'offerta"
            )
        with self.clock(10, 12):
            target = type(duplicate).objects.get(name="Rossi Meccanica S.p.A.")
            client_merge(source=duplicate, target=target, actor=marco)


def tell_story(cast: Cast, *, today: date) -> int:
    """Play the story; return the number of opportunities it made."""
    return Story(cast, today).tell()
