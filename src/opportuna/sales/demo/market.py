"""Who the bulk sells to, and what: client profiles, fresh deals, renewals and upsells."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from django.utils.text import slugify

from opportuna.accounts.models import User
from opportuna.sales.demo import vocabulary as words
from opportuna.sales.demo.configuration import DIRECT, RENEWALS, Cast
from opportuna.sales.demo.rows import DAY

AGENCY_CLIENTS = (5, 11, 17, 23)  # these end clients buy through the media agency


@dataclass
class ClientProfile:
    """A client the bulk may sell to; its row is written with its first opportunity."""

    name: str
    short: str
    domain: str
    city: str
    country: str
    phone_prefix: str
    sector: str
    employees: int
    owner: User
    agency: bool
    id: int | None = None
    people: list[dict[str, str]] | None = None


@dataclass
class Deal:
    """What a new opportunity starts from (fresh, or copied from the one it duplicates)."""

    title: str
    client: ClientProfile
    pipeline: str
    product: int
    amount: int
    owner: User
    contacts: list[dict[str, str]]
    fields: dict[str, str]
    tags: list[int]
    description: str
    duplicated_from: int | None = None
    renews_on: int | None = None  # a renewal: the contract's anniversary (day ordinal)


class Market:
    """The clients the bulk sells to and the deals it starts, all drawn from one `rng`."""

    def __init__(
        self, *, cast: Cast, rng: random.Random, clients: int, used_names: Iterable[str]
    ) -> None:
        self.cast = cast
        self.rng = rng
        self.used_names = set(used_names)
        self.sellers = cast.salespeople + cast.managers
        self.seller_weights = list(
            cumulative([1.0] * len(cast.salespeople) + [0.15] * len(cast.managers))
        )
        self.product_names = [p.name for p in cast.products]
        self.profiles = self._profiles(clients)
        # A few big clients with many deals, a long tail with one or two.
        self.profile_weights = list(cumulative(rng.lognormvariate(0, 0.8) for _ in self.profiles))

    def _profiles(self, count: int) -> list[ClientProfile]:
        rng = self.rng
        profiles = []
        for index in range(count):
            kind = rng.random()
            city, prefix = rng.choice(words.CITIES)
            prefix = f"+39 {prefix}"
            country = "Italia"
            sector = rng.choice(words.SECTORS[:3] + words.SECTORS[4:])
            if kind < 0.08:
                short = rng.choice([*words.PUBLIC_BODIES, f"Comune di {city}"])
                name, sector = short, "Pubblica amministrazione"
            elif kind < 0.2:
                short = rng.choice(words.COMPANY_NAMES_EN)
                name = f"{short} {rng.choice(words.COMPANY_LEGAL_EN)}"
                city, country = rng.choice(words.FOREIGN_CITIES)
                # UK numbers from Ofcom's range reserved for drama.
                prefix = "+44 20 7946 0" if country == "United Kingdom" else "+49 89"
            else:
                root = rng.choice(words.COMPANY_ROOTS_IT + words.LAST_NAMES_IT)
                short = f"{root} {rng.choice(words.COMPANY_TRADES_IT)}"
                name = f"{short} {rng.choice(words.COMPANY_LEGAL_IT)}"
            profiles.append(
                ClientProfile(
                    name=self._unique(name, city),
                    short=short,
                    domain=f"{slugify(short)}.example",
                    city=city,
                    country=country,
                    phone_prefix=prefix,
                    sector=sector,
                    employees=int(10 ** rng.uniform(1, 3.5)),
                    owner=rng.choice(self.cast.salespeople),
                    agency=index in AGENCY_CLIENTS,
                )
            )
        return profiles

    def _unique(self, name: str, city: str) -> str:
        candidate = name
        if candidate in self.used_names:
            candidate = f"{name} ({city})"
        number = 2
        while candidate in self.used_names:
            candidate = f"{name} ({city} {number})"
            number += 1
        self.used_names.add(candidate)
        return candidate

    def new_deal(self) -> Deal:
        """A fresh deal: a client picked by weight, a pipeline, a product and its people."""
        rng = self.rng
        pick = rng.random() * self.profile_weights[-1]
        client = self.profiles[bisect.bisect(self.profile_weights, pick)]
        # Partner deals and contracts go to the second pipeline; most business is direct.
        pipeline = DIRECT if rng.random() < 0.8 else RENEWALS
        if pipeline == DIRECT:
            product = rng.choices(range(6), weights=(35, 15, 10, 10, 20, 10))[0]
        else:
            product = rng.choices(range(6), weights=(40, 0, 10, 50, 0, 0))[0]
        _name, price, (low, high), _unit, pattern = words.PRODUCTS[product]
        quantity = low + int((high - low) * rng.random() ** 2)
        amount = quantity * price
        owner = client.owner
        if rng.random() > 0.8:
            pick = rng.random() * self.seller_weights[-1]
            owner = self.sellers[bisect.bisect(self.seller_weights, pick)]
        contacts = self._contacts(client)
        source = rng.choice(words.SOURCES)
        tags = []
        if client.agency and rng.random() < 0.85:
            tags.append(self.cast.tags[words.AGENCY_TAG].pk)
        if amount >= 40_000_00 and rng.random() < 0.4:
            tags.append(self.cast.tags["Strategico"].pk)
        if source == "Fiera" and rng.random() < 0.5:
            tags.append(self.cast.tags["Fiera SMAU"].pk)
        if client.sector == "Pubblica amministrazione":
            tags.append(self.cast.tags["Pubblica amministrazione"].pk)
        fields = self.cast.field_values(
            contacts=contacts,
            source=source,
            sector=client.sector,
            employees=client.employees,
            website=f"https://www.{client.domain}",
        )
        return Deal(
            title=f"{client.short} – {pattern.format(q=quantity)}",
            client=client,
            pipeline=pipeline,
            product=product,
            amount=amount,
            owner=owner,
            contacts=contacts,
            fields=fields,
            tags=tags,
            description=rng.choice(words.DESCRIPTIONS),
        )

    def _contacts(self, client: ClientProfile) -> list[dict[str, str]]:
        """One to three people of the client; the same people come back on its other deals."""
        rng = self.rng
        if client.people is None:
            english = client.country != "Italia"
            client.people = [self._person(client, english) for _ in range(rng.randint(3, 5))]
        wanted = rng.choices((1, 2, 3), weights=(40, 40, 20))[0]
        people = rng.sample(client.people, wanted)
        if client.agency:
            people.insert(
                1,
                {
                    "name": "Roberta Villa",
                    "role": f"Account – {words.AGENCY_TAG}",
                    "email": "roberta.villa@agenziamedianord.example",
                    "phone": "+39 02 8725 4410",
                },
            )
        return people

    def _person(self, client: ClientProfile, english: bool) -> dict[str, str]:
        rng = self.rng
        english = english or rng.random() < 0.1
        first = rng.choice(words.FIRST_NAMES_EN if english else words.FIRST_NAMES_IT)
        last = rng.choice(words.LAST_NAMES_EN if english else words.LAST_NAMES_IT)
        return {
            "name": f"{first} {last}",
            "role": rng.choice(words.CONTACT_ROLES),
            "email": f"{slugify(first)}.{slugify(last)}@{client.domain}",
            "phone": f"{client.phone_prefix} {rng.randrange(100_000, 9_999_999)}",
        }

    def follow_up(
        self, source: int, deal: Deal, closed: int, won_amount: int
    ) -> tuple[int, Deal] | None:
        """When and how a won deal comes back, made by duplication: a contract's renewal, or
        an upsell; None if it does not."""
        rng = self.rng
        product = self.product_names[deal.product]
        renews_on = None
        if deal.pipeline == RENEWALS and product in ("Support contract", "CRM Cloud licence"):
            if rng.random() > 0.9:
                return None
            due = closed + rng.randrange(20, 90) * DAY
            renews_on = closed // DAY + 365
            what = "assistenza" if product == "Support contract" else "licenze CRM Cloud"
            title = f"{deal.client.short} – Rinnovo {what} {date.fromordinal(renews_on).year}"
            amount = round(won_amount * rng.uniform(1.0, 1.08) / 100) * 100
        elif deal.pipeline == DIRECT and rng.random() < 0.3:
            due = closed + rng.randrange(60, 240) * DAY
            _name, price, _range, _unit, pattern = words.PRODUCTS[deal.product]
            quantity = max(1, round(won_amount * rng.uniform(0.2, 0.5) / price))
            title = f"{deal.client.short} – Espansione: {pattern.format(q=quantity)}"
            amount = quantity * price
        else:
            return None
        again = Deal(
            title=title,
            client=deal.client,
            pipeline=deal.pipeline,
            product=deal.product,
            amount=amount,
            owner=deal.owner,
            contacts=deal.contacts,
            fields=deal.fields,
            tags=deal.tags,
            description=deal.description,
            duplicated_from=source,
            renews_on=renews_on,
        )
        return due, again


def cumulative(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total
