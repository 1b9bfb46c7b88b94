"""Deterministic fake Pipedrive account for the sandbox.

Only a compact core (add/update time, flags) is kept per record so that scale 100 (about a
million records) fits in memory; full records are rendered on demand from a per-record RNG,
so a record renders identically on every request. Record shapes follow the example records
of the official OpenAPI specs (``templates.json``, made by
``scripts/extract_sandbox_templates.py``) plus every property their schemas document.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
import uuid
from array import array
from calendar import timegm
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATES: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "templates.json").read_text(encoding="utf-8")
)

EPOCH_START = timegm((2019, 1, 1, 0, 0, 0))
EPOCH_END = timegm((2026, 6, 30, 23, 59, 59))

# Flag bits in Table.flags.
DELETED = 1
ARCHIVED = 2
STATUS_SHIFT = 2  # two bits: 0 open, 1 won, 2 lost
STATUSES = ("open", "won", "lost")

USER_BASE = 9_000_000  # user ids differ from entity ids so mixed-up ids are caught

# Big tables scale with --scale; the rest are fixed like in a real small company.
BASE_COUNTS = {
    "deals": 2000,
    "persons": 1500,
    "organizations": 600,
    "activities": 3000,
    "products": 150,
    "notes": 1500,
    "leads": 500,
}
N_USERS = 12
PIPELINES = ("Sales", "Partnerships", "Renewals")
STAGES = ("Qualified", "Contact Made", "Proposal Made", "Negotiations Started", "Closing")

FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Eva",
    "Frank",
    "Grete",
    "Hugo",
    "Ines",
    "Jonas",
    "Kaja",
    "Liam",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rita",
    "Sven",
    "Tiina",
    "Uwe",
    "Vera",
    "Walter",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Mart",
    "Liis",
    "Karl",
    "Emma",
    "Oskar",
]
LAST = [
    "Tamm",
    "Saar",
    "Smith",
    "Muller",
    "Rossi",
    "Garcia",
    "Novak",
    "Kask",
    "Lee",
    "Brown",
    "Silva",
    "Dubois",
    "Jensen",
    "Virtanen",
    "Kowalski",
    "Horvath",
    "Costa",
    "Ivanova",
    "Schmidt",
    "Nilsson",
    "Fischer",
    "Moreau",
    "Weber",
    "Janssen",
]
COMPANY_A = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
]
COMPANY_B = [
    "Labs",
    "Systems",
    "Logistics",
    "Foods",
    "Partners",
    "Group",
    "Energy",
    "Media",
    "Robotics",
    "Health",
]
CITIES = (
    ("Tallinn", "Harju", "Harju maakond", "Estonia", "10115"),
    ("Berlin", "Berlin", "Berlin", "Germany", "10117"),
    ("Sunnyvale", "Santa Clara", "CA", "USA", "94085"),
    ("Lisbon", "Lisboa", "Lisboa", "Portugal", "1100-148"),
    ("Warsaw", "Warszawa", "Mazowieckie", "Poland", "00-001"),
    ("London", "Greater London", "England", "United Kingdom", "EC1A 1BB"),
)
STREETS = ["Main St", "Narva mnt", "Unter den Linden", "Rua Augusta", "Nowy Swiat", "Baker St"]
CURRENCIES = (
    ("EUR", "Euro", "€"),
    ("USD", "US Dollar", "$"),
    ("GBP", "British Pound", "£"),
    ("SEK", "Swedish Krona", "kr"),
    ("NOK", "Norwegian Krone", "kr"),
    ("DKK", "Danish Krone", "kr"),
    ("PLN", "Polish Zloty", "zł"),
    ("CZK", "Czech Koruna", "Kč"),
    ("HUF", "Hungarian Forint", "Ft"),
    ("CHF", "Swiss Franc", "CHF"),
    ("JPY", "Japanese Yen", "¥"),
    ("CNY", "Chinese Yuan", "¥"),
    ("INR", "Indian Rupee", "₹"),
    ("AUD", "Australian Dollar", "A$"),
    ("CAD", "Canadian Dollar", "C$"),
    ("NZD", "New Zealand Dollar", "NZ$"),
    ("BRL", "Brazilian Real", "R$"),
    ("MXN", "Mexican Peso", "$"),
    ("ZAR", "South African Rand", "R"),
    ("TRY", "Turkish Lira", "₺"),
    ("RUB", "Russian Ruble", "₽"),
    ("UAH", "Ukrainian Hryvnia", "₴"),
    ("RON", "Romanian Leu", "lei"),
    ("BGN", "Bulgarian Lev", "лв"),
    ("ISK", "Icelandic Krona", "kr"),
    ("SGD", "Singapore Dollar", "S$"),
    ("HKD", "Hong Kong Dollar", "HK$"),
    ("KRW", "South Korean Won", "₩"),
    ("ILS", "Israeli Shekel", "₪"),
    ("AED", "UAE Dirham", "د.إ"),
)
DEAL_CURRENCIES = ("EUR", "EUR", "EUR", "USD", "USD", "GBP", "SEK")
ACTIVITY_TYPES = (
    ("call", "Call", "call"),
    ("meeting", "Meeting", "meeting"),
    ("task", "Task", "task"),
    ("deadline", "Deadline", "deadline"),
    ("email", "Email", "email"),
    ("lunch", "Lunch", "lunch"),
    ("demo", "Product demo", "presentation"),
    ("follow_up", "Follow-up", "redo"),
    ("site_visit", "Site visit", "truck"),
    ("webinar", "Webinar", "camera"),
    ("contract", "Contract review", "document"),
    ("onboarding", "Onboarding", "flag"),
)
FILTER_DEFS = (
    ("All open deals", "deals"),
    ("Won this year", "deals"),
    ("Lost deals", "deals"),
    ("Big deals", "deals"),
    ("Key persons", "people"),
    ("Estonian orgs", "org"),
    ("Active products", "products"),
    ("Overdue activities", "activity"),
    ("My leads", "leads"),
    ("Partners", "org"),
)

# Custom fields per entity: (name, field_type). Leads carry the deal custom fields.
CUSTOM_FIELD_DEFS: dict[str, tuple[tuple[str, str], ...]] = {
    "deal": (
        ("Lead source detail", "varchar"),
        ("Internal notes", "text"),
        ("Score", "double"),
        ("Contract value", "monetary"),
        ("Kickoff date", "date"),
        ("Customer type", "enum"),
        ("Interests", "set"),
        ("Account manager", "user"),
        ("Partner organization", "org"),
        ("Referrer", "people"),
        ("Site address", "address"),
        ("Hotline", "phone"),
        ("Preferred call time", "time"),
        ("Contract period", "daterange"),
        ("Support hours", "timerange"),
        ("Campaign", "varchar_auto"),
    ),
    "person": (
        ("Nickname", "varchar"),
        ("Segment", "enum"),
        ("Hobbies", "set"),
        ("Birthday", "date"),
        ("Assistant phone", "phone"),
        ("Home address", "address"),
        ("NPS", "double"),
    ),
    "organization": (
        ("Registry code", "varchar"),
        ("Tier", "enum"),
        ("Annual budget", "monetary"),
        ("Billing address", "address"),
        ("Main contact", "people"),
        ("Key account owner", "user"),
        ("Employees (est.)", "double"),
        ("Parent company", "org"),
    ),
    "product": (
        ("SKU note", "varchar"),
        ("Weight kg", "double"),
        ("List price", "monetary"),
        ("Product line", "enum"),
        ("Channels", "set"),
    ),
    "activity": (("Outcome", "enum"), ("Agenda", "text"), ("Attendee count", "double")),
}
OPTION_LABELS = [
    "Low",
    "Medium",
    "High",
    "Private",
    "Company",
    "Government",
    "Gold",
    "Silver",
    "Bronze",
    "Online",
    "Retail",
    "Partner",
    "Software",
    "Hardware",
    "Services",
    "Sports",
    "Music",
    "Travel",
]

ADDRESS_PARTS = (
    "subpremise",
    "street_number",
    "route",
    "sublocality",
    "locality",
    "admin_area_level_1",
    "admin_area_level_2",
    "country",
    "postal_code",
    "formatted_address",
)


def rfc3339(t: float) -> str:
    """v2 timestamps: RFC 3339 in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def v1_ts(t: float) -> str:
    """Most v1 timestamps: 'YYYY-MM-DD HH:MM:SS', UTC without a zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def iso_ms(t: float) -> str:
    """Lead timestamps: ISO 8601 with milliseconds and Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"


def day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


@dataclass
class Table:
    """Compact core of one entity table; index i holds the record with id ids[i]."""

    name: str
    ids: list[Any]
    add: array
    upd: array
    flags: bytearray
    rev: dict[int, int] = field(default_factory=dict)  # index -> times touched
    index: dict[Any, int] = field(default_factory=dict)  # id -> index (string ids only)
    version: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def idx(self, rid: Any) -> int | None:
        if self.index:
            return self.index.get(str(rid))
        try:
            i = int(rid) - self.ids[0] if self.ids else -1
        except (TypeError, ValueError):
            return None
        return i if 0 <= i < len(self.ids) else None

    def status(self, i: int) -> str:
        if self.flags[i] & DELETED:
            return "deleted"
        return STATUSES[(self.flags[i] >> STATUS_SHIFT) & 3]


@dataclass
class CustomField:
    key: str
    name: str
    field_type: str
    options: list[dict[str, Any]] | None
    field_id: int


class Dataset:
    """All tables of one fake account, generated from (seed, scale) only: no wall clock."""

    def __init__(self, seed: int = 1, scale: float = 1.0) -> None:
        self.seed = seed
        self.scale = scale
        rng = random.Random(seed)
        self.tables: dict[str, Table] = {}
        counts = {k: max(1, round(v * scale)) for k, v in BASE_COUNTS.items()}
        for name in ("deals", "persons", "organizations", "activities", "products", "notes"):
            self.tables[name] = self._make_table(rng, name, counts[name])
        self.tables["leads"] = self._make_table(rng, "leads", counts["leads"], uuid_ids=True)
        self.tables["users"] = self._make_small(rng, "users", N_USERS, base=USER_BASE + 1)
        self.tables["pipelines"] = self._make_small(rng, "pipelines", len(PIPELINES))
        self.tables["stages"] = self._make_small(rng, "stages", len(PIPELINES) * len(STAGES))
        self.tables["activityTypes"] = self._make_small(rng, "activityTypes", len(ACTIVITY_TYPES))
        self.tables["currencies"] = self._make_small(rng, "currencies", len(CURRENCIES))
        self.tables["filters"] = self._make_small(rng, "filters", len(FILTER_DEFS))
        users = self.tables["users"]
        users.flags[len(users) - 1] |= DELETED  # one deactivated user, still listed
        self.active_users = [users.ids[i] for i in range(len(users) - 1)]
        self._seed_flags(rng)
        for t in self.tables.values():
            if t.name in BASE_COUNTS:
                self._cluster_update_times(rng, t)
        self.max_seeded = max(max(t.upd) for t in self.tables.values() if len(t))
        self.custom_fields = {e: self._make_custom_fields(e) for e in CUSTOM_FIELD_DEFS}
        self.custom_fields["lead"] = self.custom_fields["deal"]
        self.counts = {k: len(t) for k, t in self.tables.items()}
        self._base_cache: dict[str, str] = {}

    # ----------------------------------------------------------------- generation

    def _make_table(self, rng: random.Random, name: str, n: int, uuid_ids: bool = False) -> Table:
        add = array("q", bytes(8 * n))
        upd = array("q", bytes(8 * n))
        span = EPOCH_END - EPOCH_START
        # A few bulk-import / bulk-edit instants shared by many records.
        bulk = [EPOCH_START + rng.randrange(span) for _ in range(4)]
        for i in range(n):
            a = EPOCH_START + int(span * rng.random() ** 0.8)  # more records in later years
            r = rng.random()
            if r < 0.35:
                u = a  # never edited
            elif r < 0.85:
                u = a + int(rng.expovariate(1 / (14 * 86400)))
            else:
                u = a + rng.randrange(EPOCH_END - a + 1)
            u = min(u, EPOCH_END)
            if rng.random() < 0.02:
                u = rng.choice(bulk)
                a = min(a, u - rng.randrange(0, 86400 * 30))
                a = max(a, EPOCH_START)
            add[i], upd[i] = a, u
        if uuid_ids:
            ids: list[Any] = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
            index = {rid: i for i, rid in enumerate(ids)}
        else:
            ids, index = list(range(1, n + 1)), {}
        return Table(name, ids, add, upd, bytearray(n), index=index)

    def _make_small(self, rng: random.Random, name: str, n: int, base: int = 1) -> Table:
        add = array("q", [EPOCH_START + rng.randrange(180 * 86400) for _ in range(n)])
        upd = array("q", [a + rng.choice((0, 0, rng.randrange(EPOCH_END - a))) for a in add])
        return Table(name, list(range(base, base + n)), add, upd, bytearray(n))

    def _seed_flags(self, rng: random.Random) -> None:
        deals = self.tables["deals"]
        for i in range(len(deals)):
            r = rng.random()
            status = 1 if r < 0.2 else 2 if r < 0.35 else 0
            f = status << STATUS_SHIFT
            r = rng.random()
            if r < 0.03:
                f |= DELETED
            elif r < 0.06:
                f |= ARCHIVED
            deals.flags[i] = f
        leads = self.tables["leads"]
        for i in range(len(leads)):
            if rng.random() < 0.03:
                leads.flags[i] |= ARCHIVED
        self.live_deals = [i for i in range(len(deals)) if not deals.flags[i] & DELETED]

    def _cluster_update_times(self, rng: random.Random, t: Table) -> None:
        """Give 4 records the same update_time around every 50th position of the default
        list sorted by update_time, so equal timestamps straddle page boundaries (every
        100- and 500-record boundary included): taps must not lose or skip them."""
        visible = [i for i in range(len(t)) if not t.flags[i] & (DELETED | ARCHIVED)]
        order = sorted(visible, key=lambda i: (t.upd[i], t.ids[i]))
        for k in range(50, len(order), 50):
            group = order[k - 2 : k + 2]
            if len(group) < 2:
                continue
            v = t.upd[group[0]]
            for i in group:
                t.upd[i] = v
                if t.add[i] > v:
                    t.add[i] = v

    def _make_custom_fields(self, entity: str) -> list[CustomField]:
        out = []
        opt_id = {"deal": 100, "person": 200, "organization": 300, "product": 400}.get(entity, 500)
        base = {"deal": 12500, "person": 9100, "organization": 4100, "product": 60}.get(entity, 40)
        for n, (name, ftype) in enumerate(CUSTOM_FIELD_DEFS[entity]):
            key = hashlib.sha1(f"{self.seed}:{entity}:{n}:{name}".encode()).hexdigest()
            options = None
            if ftype in ("enum", "set"):
                r = random.Random(f"{self.seed}:{key}")
                labels = r.sample(OPTION_LABELS, r.randint(3, 5))
                options = []
                for label in labels:
                    opt_id += 1
                    options.append({"id": opt_id, "label": label})
            out.append(CustomField(key, name, ftype, options, base + n))
        return out

    # ----------------------------------------------------------------- relations

    def _rng(self, stream: str, i: int, salt: str = "") -> random.Random:
        return random.Random(f"{self.seed}|{stream}|{i}|{salt}")

    def links(self, stream: str, i: int) -> dict[str, Any]:
        """Foreign keys of record i, derived from its own RNG so filters need no render."""
        r = self._rng(stream, i, "links")
        n = self.counts
        owner = r.choice(self.active_users)
        if stream == "persons":
            return {
                "owner_id": owner,
                "org_id": r.randint(1, n["organizations"]) if r.random() < 0.8 else None,
            }
        if stream in ("organizations", "products"):
            return {"owner_id": owner}
        if stream == "deals":
            person = r.randint(1, n["persons"]) if r.random() < 0.9 else None
            org = self.links("persons", person - 1)["org_id"] if person else None
            if org is None and (person is None or r.random() < 0.3):
                org = r.randint(1, n["organizations"])
            stage = r.randint(1, n["stages"])
            return {
                "owner_id": owner,
                "person_id": person,
                "org_id": org,
                "stage_id": stage,
                "pipeline_id": (stage - 1) // len(STAGES) + 1,
            }
        if stream == "leads":
            person = r.randint(1, n["persons"]) if r.random() < 0.8 else None
            org = self.links("persons", person - 1)["org_id"] if person else None
            if org is None and person is None:
                org = r.randint(1, n["organizations"])
            return {"owner_id": owner, "person_id": person, "organization_id": org}
        if stream in ("activities", "notes"):
            r2 = r.random()
            out: dict[str, Any] = {
                "deal_id": None,
                "person_id": None,
                "org_id": None,
                "lead_id": None,
            }
            if r2 < 0.55 and self.live_deals:
                d = r.choice(self.live_deals)
                dl = self.links("deals", d)
                out.update(deal_id=d + 1, person_id=dl["person_id"], org_id=dl["org_id"])
            elif r2 < 0.8:
                p = r.randint(1, n["persons"])
                out.update(person_id=p, org_id=self.links("persons", p - 1)["org_id"])
            elif r2 < 0.93:
                out["org_id"] = r.randint(1, n["organizations"])
            else:
                li = r.randrange(n["leads"])
                ll = self.links("leads", li)
                out.update(
                    lead_id=self.tables["leads"].ids[li],
                    person_id=ll["person_id"],
                    org_id=ll["organization_id"],
                )
            key = "user_id" if stream == "notes" else "owner_id"
            out[key] = owner
            if stream == "activities":
                out["done"] = r.random() < 0.6
            return out
        return {}

    # ----------------------------------------------------------------- custom field values

    def _cf_values(
        self, entity: str, r: random.Random, t_add: int
    ) -> list[tuple[CustomField, Any]]:
        """Canonical custom field values; None for about a quarter (fields left empty)."""
        out = []
        n = self.counts
        for cf in self.custom_fields[entity]:
            if r.random() < 0.25:
                out.append((cf, None))
                continue
            ft = cf.field_type
            if ft in ("varchar", "varchar_auto"):
                season = r.choice(("spring", "autumn", "expo", "web"))
                v: Any = f"{r.choice(COMPANY_A)} {season} {r.randint(1, 99)}"
            elif ft == "text":
                topic, step = (
                    r.choice(("pricing", "timeline", "scope")),
                    r.choice(("call", "offer")),
                )
                v = f"Discussed {topic}.\nNext: {step}."
            elif ft == "double":
                v = round(r.uniform(0, 1000), 2) if r.random() < 0.7 else r.randint(0, 500)
            elif ft == "monetary":
                v = (round(r.uniform(100, 90000), 2), r.choice(DEAL_CURRENCIES))
            elif ft == "date":
                v = day(t_add + r.randrange(-400, 400) * 86400)
            elif ft == "enum":
                v = r.choice(cf.options or [{"id": 0}])["id"]
            elif ft == "set":
                opts = cf.options or []
                v = sorted(o["id"] for o in r.sample(opts, r.randint(1, min(3, len(opts)))))
            elif ft == "user":
                v = r.choice(self.active_users)
            elif ft == "org":
                v = r.randint(1, n["organizations"])
            elif ft == "people":
                v = r.randint(1, n["persons"])
            elif ft == "address":
                v = self._address(r)
            elif ft == "phone":
                v = f"+{r.randint(1, 49)} {r.randint(100, 999)} {r.randint(1000, 9999)}"
            elif ft == "time":
                v = f"{r.randint(7, 18):02d}:{r.choice((0, 15, 30, 45)):02d}:00"
            elif ft == "daterange":
                s = t_add + r.randrange(0, 200) * 86400
                v = (day(s), day(s + r.randint(1, 365) * 86400))
            elif ft == "timerange":
                h = r.randint(7, 12)
                v = (f"{h:02d}:00:00", f"{h + r.randint(1, 8):02d}:00:00")
            else:  # pragma: no cover - all defined types handled above
                v = None
            out.append((cf, v))
        return out

    def _address(self, r: random.Random) -> dict[str, Any]:
        city, county, state, country, postal = r.choice(CITIES)
        street, number = r.choice(STREETS), str(r.randint(1, 180))
        sub = r.choice((None, None, f"Apt {r.randint(1, 40)}"))
        value = f"{street} {number}, {city}"
        return {
            "value": value,
            "subpremise": sub,
            "street_number": number,
            "route": street,
            "sublocality": None,
            "locality": city,
            "admin_area_level_1": state,
            "admin_area_level_2": county,
            "country": country,
            "postal_code": postal,
            "formatted_address": f"{street} {number}, {postal} {city}, {country}",
        }

    def _ref_v1(self, ft: str, rid: int) -> dict[str, Any]:
        """v1 renders user/org/person custom field values as objects carrying `value`."""
        if ft == "user":
            return {
                "id": rid,
                "name": self.user_name(rid),
                "email": self.user_email(rid),
                "has_pic": 0,
                "pic_hash": None,
                "active_flag": True,
                "value": rid,
            }
        if ft == "org":
            return {
                "name": self.org_name(rid),
                "people_count": 1,
                "owner_id": self.active_users[0],
                "address": None,
                "active_flag": True,
                "cc_email": None,
                "value": rid,
            }
        return {
            "active_flag": True,
            "name": self.person_name(rid),
            "email": [],
            "phone": [],
            "owner_id": self.active_users[0],
            "value": rid,
        }

    def custom_v1(self, entity: str, r: random.Random, t_add: int) -> dict[str, Any]:
        """v1: top-level hash keys plus companion keys (`_currency`, `_until`, address parts)."""
        out: dict[str, Any] = {}
        for cf, v in self._cf_values(entity, r, t_add):
            k, ft = cf.key, cf.field_type
            if ft == "monetary":
                out[k], out[k + "_currency"] = (v[0], v[1]) if v else (None, None)
            elif ft in ("daterange", "timerange"):
                out[k], out[k + "_until"] = (v[0], v[1]) if v else (None, None)
            elif ft == "address":
                out[k] = v["value"] if v else None
                for part in ADDRESS_PARTS:
                    out[f"{k}_{part}"] = v[part] if v else None
            elif ft == "enum":
                out[k] = str(v) if v is not None else None
            elif ft == "set":
                out[k] = ",".join(str(x) for x in v) if v else None
            elif ft in ("user", "org", "people"):
                out[k] = self._ref_v1(ft, v) if v is not None else None
            else:
                out[k] = v
        return out

    def custom_v2(
        self, entity: str, r: random.Random, t_add: int, labels: bool = False
    ) -> dict[str, Any]:
        """v2: everything under `custom_fields`; composite types become objects."""
        out: dict[str, Any] = {}
        for cf, v in self._cf_values(entity, r, t_add):
            ft = cf.field_type
            if v is None:
                out[cf.key] = None
            elif ft == "monetary":
                out[cf.key] = {"value": v[0], "currency": v[1]}
            elif ft in ("daterange", "timerange"):
                out[cf.key] = {"from": v[0], "until": v[1]}
            elif ft == "address":
                out[cf.key] = dict(v)
            elif ft in ("enum", "set") and labels:
                lab = {o["id"]: o["label"] for o in cf.options or []}
                if ft == "enum":
                    out[cf.key] = {"id": v, "label": lab.get(v)}
                else:
                    out[cf.key] = [{"id": x, "label": lab.get(x)} for x in v]
            else:
                out[cf.key] = v
        return out

    # ----------------------------------------------------------------- names

    def person_name(self, pid: int) -> str:
        r = self._rng("persons", pid - 1, "name")
        return f"{r.choice(FIRST)} {r.choice(LAST)}"

    def org_name(self, oid: int) -> str:
        r = self._rng("organizations", oid - 1, "name")
        return f"{r.choice(COMPANY_A)} {r.choice(COMPANY_B)} {oid}"

    def user_name(self, uid: int) -> str:
        i = uid - USER_BASE - 1
        return f"{FIRST[(i * 7) % len(FIRST)]} {LAST[(i * 5) % len(LAST)]}"

    def user_email(self, uid: int) -> str:
        return self.user_name(uid).lower().replace(" ", ".") + "@sandbox.example.com"

    # ----------------------------------------------------------------- rendering

    def _base(self, template: str) -> dict[str, Any]:
        """Start from the spec example record; every schema property present (None if unset).

        Kept as a JSON string per template: json.loads is ~10x faster than deepcopy here."""
        raw = self._base_cache.get(template)
        if raw is None:
            tpl = TEMPLATES[template]
            rec = copy.deepcopy(tpl["examples"][0]) if tpl["examples"] else {}
            for p in tpl["properties"]:
                rec.setdefault(p, None)
            raw = self._base_cache[template] = json.dumps(rec)
        return json.loads(raw)

    def _rev(self, t: Table, i: int) -> str:
        n = t.rev.get(i)
        return f" (rev {n})" if n else ""

    def render(
        self, stream: str, i: int, api: str = "v2", opts: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        opts = opts or {}
        return getattr(self, f"_render_{stream}")(i, api, opts)

    def _render_deals(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["deals"]
        r = self._rng("deals", i)
        ln = self.links("deals", i)
        a, u = t.add[i], t.upd[i]
        st = STATUSES[(t.flags[i] >> STATUS_SHIFT) & 3]
        closed = st in ("won", "lost")
        close_t = a + (u - a) * r.uniform(0.3, 1.0) if closed else None
        rec = self._base("v2:deals")
        who = self.org_name(ln["org_id"]) if ln["org_id"] else self.person_name(ln["person_id"])
        rec.update(
            id=t.ids[i],
            title=f"{who} deal{self._rev(t, i)}",
            creator_user_id=r.choice(self.active_users),
            owner_id=ln["owner_id"],
            value=round(r.choice((0, r.uniform(500, 50000), r.uniform(50000, 400000))), 2),
            person_id=ln["person_id"],
            org_id=ln["org_id"],
            stage_id=ln["stage_id"],
            pipeline_id=ln["pipeline_id"],
            currency=r.choice(DEAL_CURRENCIES),
            archive_time=rfc3339(u) if t.flags[i] & ARCHIVED else None,
            add_time=rfc3339(a),
            update_time=rfc3339(u),
            stage_change_time=rfc3339(a + (u - a) * r.random()) if r.random() < 0.7 else None,
            status=t.status(i),
            is_archived=bool(t.flags[i] & ARCHIVED),
            is_deleted=bool(t.flags[i] & DELETED),
            probability=r.choice((None, None, 10, 25, 50, 75, 90)),
            lost_reason=r.choice(("Price", "Went with competitor", "No budget"))
            if st == "lost"
            else None,
            visible_to=r.choice((3, 3, 3, 1, 7)),
            close_time=rfc3339(close_t) if close_t else None,
            won_time=rfc3339(close_t) if st == "won" and close_t else None,
            lost_time=rfc3339(close_t) if st == "lost" and close_t else None,
            local_won_date=day(close_t) if st == "won" and close_t else None,
            local_lost_date=day(close_t) if st == "lost" and close_t else None,
            local_close_date=day(close_t) if close_t else None,
            expected_close_date=day(a + r.randint(14, 180) * 86400) if r.random() < 0.7 else None,
            label_ids=sorted(r.sample((1, 2, 3, 4, 5), r.randint(0, 2))),
            origin=r.choice(("ManuallyCreated", "ManuallyCreated", "API", "Import", "LeadsInbox")),
            origin_id=None,
            channel=r.choice((None, None, 52, 53)),
            channel_id=None,
            source_lead_id=None,
            acv=None,
            arr=None,
            mrr=None,
        )
        rec["custom_fields"] = self.custom_v2("deal", r, a, bool(opts.get("include_option_labels")))
        return rec

    def _render_persons(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["persons"]
        r = self._rng("persons", i)
        ln = self.links("persons", i)
        name = self.person_name(t.ids[i])
        first, last = name.split(" ", 1)
        mail = f"{first}.{last}{t.ids[i]}@example.com".lower()
        rec = self._base("v2:persons")
        rec.update(
            id=t.ids[i],
            name=name + self._rev(t, i),
            first_name=first,
            last_name=last,
            owner_id=ln["owner_id"],
            org_id=ln["org_id"],
            add_time=rfc3339(t.add[i]),
            update_time=rfc3339(t.upd[i]),
            emails=[{"value": mail, "primary": True, "label": "work"}],
            phones=[
                {"value": f"+372 5{r.randint(100000, 9999999)}", "primary": True, "label": "mobile"}
            ]
            if r.random() < 0.7
            else [],
            is_deleted=bool(t.flags[i] & DELETED),
            visible_to=r.choice((3, 3, 1, 7)),
            label_ids=sorted(r.sample((1, 2, 3), r.randint(0, 2))),
            picture_id=None,
            notes=None,
            im=[],
            birthday=day(EPOCH_START - r.randint(20, 60) * 365 * 86400)
            if r.random() < 0.2
            else None,
            job_title=r.choice((None, "CEO", "CTO", "Buyer", "Manager", "Engineer")),
            postal_address=self._address(r) if r.random() < 0.4 else None,
        )
        if rec["postal_address"]:
            rec["postal_address"].pop("formatted_address", None)
        rec["custom_fields"] = self.custom_v2(
            "person", r, t.add[i], bool(opts.get("include_option_labels"))
        )
        return rec

    def _render_organizations(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["organizations"]
        r = self._rng("organizations", i)
        ln = self.links("organizations", i)
        rec = self._base("v2:organizations")
        rec.pop("org_id", None)  # in the spec example only, not in the schema
        addr = self._address(r) if r.random() < 0.7 else None
        if addr:
            addr.pop("formatted_address", None)
        rec.update(
            id=t.ids[i],
            name=self.org_name(t.ids[i]) + self._rev(t, i),
            owner_id=ln["owner_id"],
            add_time=rfc3339(t.add[i]),
            update_time=rfc3339(t.upd[i]),
            is_deleted=bool(t.flags[i] & DELETED),
            visible_to=r.choice((3, 3, 1, 7)),
            label_ids=sorted(r.sample((1, 2, 3), r.randint(0, 1))),
            address=addr,
            annual_revenue=r.choice((None, r.randint(1, 500) * 100000)),
            employee_count=r.choice((None, r.randint(1, 5000))),
            industry=r.choice((None, r.randint(1, 40))),
            linkedin=None,
            website=f"https://www.{self.org_name(t.ids[i]).split()[0].lower()}{t.ids[i]}.example"
            if r.random() < 0.6
            else None,
        )
        rec["custom_fields"] = self.custom_v2(
            "organization", r, t.add[i], bool(opts.get("include_option_labels"))
        )
        return rec

    def _render_activities(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["activities"]
        r = self._rng("activities", i)
        ln = self.links("activities", i)
        a, u = t.add[i], t.upd[i]
        key, name, _ = r.choice(ACTIVITY_TYPES)
        due = a + r.randint(-3, 30) * 86400
        who = self.person_name(ln["person_id"]) if ln["person_id"] else "team"
        rec = self._base("v2:activities")
        rec.update(
            id=t.ids[i],
            subject=f"{name} with {who}{self._rev(t, i)}",
            type=key,
            owner_id=ln["owner_id"],
            creator_user_id=r.choice(self.active_users),
            is_deleted=bool(t.flags[i] & DELETED),
            add_time=rfc3339(a),
            update_time=rfc3339(u),
            deal_id=ln["deal_id"],
            lead_id=ln["lead_id"],
            person_id=ln["person_id"],
            org_id=ln["org_id"],
            project_id=None,
            due_date=day(due),
            due_time=r.choice((None, f"{r.randint(7, 17):02d}:{r.choice((0, 30)):02d}:00")),
            duration=r.choice((None, "00:30:00", "01:00:00")),
            busy=r.random() < 0.5,
            done=ln["done"],
            marked_as_done_time=rfc3339(max(a, u - r.randrange(0, 3600))) if ln["done"] else None,
            location=None,
            participants=[{"person_id": ln["person_id"], "primary": True}]
            if ln["person_id"]
            else [],
            attendees=None,
            conference_meeting_client=None,
            conference_meeting_url=None,
            conference_meeting_id=None,
            public_description=None,
            priority=None,
            note=r.choice((None, "Bring the offer", "Call back after lunch")),
        )
        if "attendees" not in str(opts.get("include_fields", "")):
            rec.pop("attendees", None)
        rec["custom_fields"] = self.custom_v2(
            "activity", r, a, bool(opts.get("include_option_labels"))
        )
        return rec

    def _render_products(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["products"]
        r = self._rng("products", i)
        ln = self.links("products", i)
        tier = r.choice(("Pro", "Basic", "Team", "Enterprise", "Mini"))
        name = f"{tier} {r.choice(('Plan', 'Widget', 'Service', 'License', 'Kit'))}"
        price = round(r.uniform(5, 2000), 2)
        rec = self._base("v2:products")
        rec.update(
            id=t.ids[i],
            name=f"{name} {t.ids[i]}{self._rev(t, i)}",
            code=f"P-{t.ids[i]:05d}",
            description=r.choice((None, "Standard offering", "Limited edition")),
            unit=r.choice(("", "pcs", "h", "seat")),
            tax=r.choice((0, 9, 20, 22)),
            category=r.choice((None, "Software", "Hardware", "Services")),
            owner_id=ln["owner_id"],
            is_linkable=True,
            is_deleted=bool(t.flags[i] & DELETED),
            visible_to=r.choice((3, 1, 5, 7)),
            add_time=rfc3339(t.add[i]),
            update_time=rfc3339(t.upd[i]),
            billing_frequency=r.choice(("one-time", "one-time", "monthly", "annually")),
            billing_frequency_cycles=None,
            prices=[
                {
                    "product_id": t.ids[i],
                    "price": price,
                    "currency": "EUR",
                    "cost": round(price * 0.4, 2),
                    "direct_cost": None,
                    "notes": "",
                }
            ],
        )
        # The spec's example record holds a schema here instead of a value: replace it.
        rec["custom_fields"] = self.custom_v2(
            "product", r, t.add[i], bool(opts.get("include_option_labels"))
        )
        return rec

    def _render_pipelines(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["pipelines"]
        rec = self._base("v2:pipelines")
        rec.update(
            id=t.ids[i],
            name=PIPELINES[i] + self._rev(t, i),
            order_nr=i + 1,
            is_deleted=bool(t.flags[i] & DELETED),
            is_deal_probability_enabled=i == 0,
            add_time=rfc3339(t.add[i]),
            update_time=rfc3339(t.upd[i]),
        )
        return rec

    def _render_stages(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["stages"]
        rec = self._base("v2:stages")
        pos = i % len(STAGES)
        rec.update(
            id=t.ids[i],
            order_nr=pos + 1,
            name=STAGES[pos] + self._rev(t, i),
            is_deleted=bool(t.flags[i] & DELETED),
            deal_probability=(pos + 1) * 20,
            pipeline_id=i // len(STAGES) + 1,
            is_deal_rot_enabled=pos < 2,
            days_to_rotten=14 if pos < 2 else None,
            add_time=rfc3339(t.add[i]),
            update_time=rfc3339(t.upd[i]),
        )
        return rec

    def _render_notes(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["notes"]
        r = self._rng("notes", i)
        ln = self.links("notes", i)
        uid = ln["user_id"]
        rec = self._base("v1:notes")
        deal_title = None
        if ln["deal_id"]:
            dl = self.links("deals", ln["deal_id"] - 1)
            who = self.org_name(dl["org_id"]) if dl["org_id"] else self.person_name(dl["person_id"])
            deal_title = f"{who} deal"
        rec.update(
            id=t.ids[i],
            user_id=uid,
            deal_id=ln["deal_id"],
            person_id=ln["person_id"],
            org_id=ln["org_id"],
            lead_id=ln["lead_id"],
            project_id=None,
            task_id=None,
            content=f"<p>{r.choice(('Call summary', 'Meeting notes', 'Follow-up', 'Offer sent'))}: "
            f"{r.choice(('all good', 'needs a discount', 'decision next week'))}.</p>"
            + self._rev(t, i),
            add_time=v1_ts(t.add[i]),
            update_time=v1_ts(t.upd[i]),
            active_flag=not t.flags[i] & DELETED,
            pinned_to_deal_flag=bool(ln["deal_id"]) and r.random() < 0.1,
            pinned_to_person_flag=False,
            pinned_to_organization_flag=False,
            pinned_to_lead_flag=False,
            pinned_to_project_flag=False,
            pinned_to_task_flag=False,
            last_update_user_id=uid,
            organization={"name": self.org_name(ln["org_id"])} if ln["org_id"] else None,
            person={"name": self.person_name(ln["person_id"])} if ln["person_id"] else None,
            deal={"title": deal_title} if deal_title else None,
            project=None,
            task=None,
            user={
                "email": self.user_email(uid),
                "name": self.user_name(uid),
                "icon_url": None,
                "is_you": uid == self.active_users[0],
            },
        )
        return rec

    def _render_leads(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["leads"]
        r = self._rng("leads", i)
        ln = self.links("leads", i)
        who = (
            self.person_name(ln["person_id"])
            if ln["person_id"]
            else self.org_name(ln["organization_id"])
        )
        rec = self._base("v1:leads")
        rec.update(
            id=t.ids[i],
            title=f"{who} lead{self._rev(t, i)}",
            owner_id=ln["owner_id"],
            creator_id=r.choice(self.active_users),
            label_ids=[],
            person_id=ln["person_id"],
            organization_id=ln["organization_id"],
            source_name=r.choice(("API", "Manually created", "Web forms", "Chatbot")),
            origin=r.choice(("API", "ManuallyCreated", "WebForms")),
            origin_id=None,
            channel=None,
            channel_id=None,
            is_archived=bool(t.flags[i] & ARCHIVED),
            was_seen=r.random() < 0.6,
            value={"amount": r.randint(1, 200) * 100, "currency": "EUR"}
            if r.random() < 0.6
            else None,
            expected_close_date=day(t.add[i] + r.randint(10, 120) * 86400)
            if r.random() < 0.3
            else None,
            next_activity_id=None,
            add_time=iso_ms(t.add[i]),
            update_time=iso_ms(t.upd[i]),
            visible_to=r.choice(("1", "3", "3")),
            cc_email=f"sandbox+{t.ids[i][:8]}@pipedrivemail.example",
            source_deal_id=None,
        )
        rec.update(self.custom_v1("lead", r, t.add[i]))
        return rec

    def _render_users(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["users"]
        uid = t.ids[i]
        rec = self._base("v1:users")
        active = not t.flags[i] & DELETED
        rec.update(
            id=uid,
            name=self.user_name(uid) + self._rev(t, i),
            email=self.user_email(uid),
            default_currency="EUR",
            locale="en_US",
            lang=1,
            phone=None,
            activated=active,
            last_login=v1_ts(t.upd[i]),
            created=v1_ts(t.add[i]),
            modified=v1_ts(t.upd[i]),
            has_created_company=i == 0,
            access=rec["access"]
            if i == 0
            else [
                {
                    "app": "sales",
                    "admin": False,
                    "permission_set_id": rec["access"][0]["permission_set_id"],
                }
            ],
            active_flag=active,
            timezone_name="Europe/Tallinn",
            timezone_offset="+02:00",
            role_id=1,
            icon_url=None,
            is_you=i == 0,
            is_deleted=False,
        )
        return rec

    def _render_activityTypes(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["activityTypes"]
        key, name, icon = ACTIVITY_TYPES[i]
        rec = self._base("v1:activityTypes")
        rec.update(
            id=t.ids[i],
            order_nr=i + 1,
            name=name + self._rev(t, i),
            key_string=key,
            icon_key=icon,
            active_flag=True,
            color=None if i < 6 else "FFC107",
            is_custom_flag=i >= 6,
            add_time=v1_ts(t.add[i]),
            update_time=v1_ts(t.upd[i]),
        )
        return rec

    def _render_currencies(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["currencies"]
        code, name, sym = CURRENCIES[i]
        return {
            "id": t.ids[i],
            "code": code,
            "name": name,
            "decimal_points": 0 if code in ("JPY", "KRW", "HUF", "ISK") else 2,
            "symbol": sym,
            "active_flag": True,
            "is_custom_flag": False,
        }

    def _render_filters(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["filters"]
        name, typ = FILTER_DEFS[i]
        rec = self._base("v1:filters")
        rec.update(
            id=t.ids[i],
            name=name + self._rev(t, i),
            active_flag=True,
            type=typ,
            temporary_flag=None,
            user_id=self.active_users[i % len(self.active_users)],
            add_time=v1_ts(t.add[i]),
            update_time=v1_ts(t.upd[i]),
            visible_to="7" if i % 3 else "1",
            custom_view_id=None,
            filter_code=None,
            is_editable=True,
            last_used_time=None,
        )
        return rec

    # ----------------------------------------------------------------- field definitions

    STANDARD_SOURCES = {
        "deal": "v2:deals",
        "person": "v2:persons",
        "organization": "v2:organizations",
        "product": "v2:products",
        "activity": "v2:activities",
        "note": "v1:notes",
        "lead": "v1:leads",
    }

    @staticmethod
    def _std_type(key: str) -> str:
        special = {
            "owner_id": "user",
            "user_id": "user",
            "creator_user_id": "user",
            "org_id": "org",
            "person_id": "people",
            "stage_id": "stage",
            "value": "monetary",
            "status": "status",
            "visible_to": "visible_to",
            "label_ids": "set",
            "deal_id": "deal",
            "lead_id": "lead",
            "content": "text",
            "emails": "varchar",
            "phones": "phone",
            "address": "address",
            "postal_address": "address",
            "location": "address",
            "due_date": "date",
            "expected_close_date": "date",
            "birthday": "date",
            "due_time": "time",
            "duration": "time",
            "done": "boolean",
            "prices": "price_list",
        }
        if key in special:
            return special[key]
        if key == "id":
            return "int"
        if key.endswith("_time"):
            return "date"
        if key.endswith("_id"):
            return "int"
        if key.startswith(("is_", "pinned_")) or key.endswith("_flag"):
            return "boolean"
        return "varchar"

    def standard_fields(self, entity: str) -> list[str]:
        tpl = TEMPLATES[self.STANDARD_SOURCES[entity]]
        keys = list(
            dict.fromkeys([*tpl["properties"], *(tpl["examples"][0] if tpl["examples"] else {})])
        )
        drop = {"custom_fields", "org_id"} if entity == "organization" else {"custom_fields"}
        if entity == "note":
            drop |= {"user", "deal", "person", "organization", "project", "task", "lead"}
        return [k for k in keys if k not in drop]

    def fields_v1(self, entity: str) -> list[dict[str, Any]]:
        """v1 `*Fields` rows: standard fields (edit_flag false) then custom ones (true)."""
        tpl_name = {"note": "v1:noteFields", "product": "v1:productFields"}.get(
            entity, f"v1:{entity}Fields"
        )
        tpl = TEMPLATES.get(tpl_name) or TEMPLATES["v1:dealFields"]
        base = copy.deepcopy(tpl["examples"][0])
        for p in tpl["properties"]:
            base.setdefault(p, None)
        t0 = v1_ts(EPOCH_START)
        out = []
        for n, key in enumerate(self.standard_fields(entity)):
            row = dict(base)
            row.update(
                id=n + 1,
                key=key,
                name=key.replace("_", " ").capitalize(),
                field_type=self._std_type(key),
                edit_flag=False,
                options=None,
            )
            self._v1_field_common(row, n, t0)
            if key == "status" and entity == "deal":
                row["options"] = [
                    {"id": s, "label": s.capitalize()} for s in (*STATUSES, "deleted")
                ]
            out.append(row)
        for cf in self.custom_fields.get(entity, []):
            row = dict(base)
            row.update(
                id=cf.field_id,
                key=cf.key,
                name=cf.name,
                field_type=cf.field_type,
                edit_flag=True,
                options=copy.deepcopy(cf.options),
            )
            self._v1_field_common(row, len(out), t0)
            out.append(row)
        return out

    @staticmethod
    def _v1_field_common(row: dict[str, Any], n: int, t0: str) -> None:
        for k, v in (
            ("order_nr", n),
            ("add_time", t0),
            ("update_time", t0),
            ("active_flag", True),
            ("created_by_user_id", USER_BASE + 1),
            ("last_updated_by_user_id", USER_BASE + 1),
            ("mandatory_flag", False),
            ("is_subfield", False),
            ("subfields", None),
            ("options_deleted", [] if row.get("options") else None),
        ):
            if k in row:
                row[k] = v

    def fields_v2(self, entity: str) -> list[dict[str, Any]]:
        """v2 `*Fields` rows (field_code/field_name/is_custom_field shape of the v2 spec)."""
        out = []
        for key in self.standard_fields(entity):
            ft = self._std_type(key)
            out.append(
                {
                    "field_name": key.replace("_", " ").capitalize(),
                    "field_code": key,
                    "description": None,
                    "field_type": ft,
                    "options": None,
                    "subfields": self._v2_subfields(key, ft),
                    "is_custom_field": False,
                    "is_optional_response_field": False,
                }
            )
        for cf in self.custom_fields.get(entity, []):
            out.append(
                {
                    "field_name": cf.name,
                    "field_code": cf.key,
                    "description": None,
                    "field_type": cf.field_type,
                    "options": copy.deepcopy(cf.options),
                    "subfields": self._v2_subfields(cf.name, cf.field_type),
                    "is_custom_field": True,
                    "is_optional_response_field": False,
                }
            )
        return out

    @staticmethod
    def _v2_subfields(name: str, ft: str) -> list[dict[str, str]] | None:
        if ft == "monetary":
            return [
                {"field_code": "value", "field_name": f"Amount of {name}", "field_type": "double"},
                {
                    "field_code": "currency",
                    "field_name": f"Currency of {name}",
                    "field_type": "varchar",
                },
            ]
        if ft == "address":
            return [
                {"field_code": p, "field_name": f"{p} of {name}", "field_type": "varchar"}
                for p in ("value", *ADDRESS_PARTS)
            ]
        return None
