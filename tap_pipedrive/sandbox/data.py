"""Deterministic fake Pipedrive account for the sandbox.

Only a compact core (add/update time, flags) is kept per record so that scale 100 (about a
million records) fits in memory; full records are rendered on demand from a per-record RNG,
so a record renders identically on every request. Record shapes follow the example records
of the official OpenAPI specs (``templates.json``, made by
``scripts/extract_sandbox_templates.py``) plus every property their schemas document.

Children of deals (deal products, participants, flow entries) and mail messages are not
stored: per-parent counts are kept as offset arrays (ids of deal i's products are
``dp_off[i]+1 .. dp_off[i+1]``) and the rows are rendered from per-id RNGs. The deal that
each activity, note and file hangs on is an int array, so deal -> children indexes are
built lazily without rendering anything.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import threading
import time
import uuid
from array import array
from bisect import bisect_right
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
# Tables added for the second batch of streams; generated from their own RNG so the
# tables above keep their exact contents.
MORE_COUNTS = {"files": 800, "callLogs": 400, "mailThreads": 300, "projects": 40, "tasks": 240}
MORE_MIN = {"files": 30, "callLogs": 40, "mailThreads": 20, "projects": 12, "tasks": 30}
N_USERS = 12
COMPANY_ID = 7_700_001  # the account's company id (goal assignee, `company_id` fields)
TEAM_IDS = (1, 2)  # goal assignees of type team
DEAL_PRODUCT_WEIGHTS = (30, 25, 20, 15, 10)  # products per deal 0..4: mean 1.5
PARTICIPANT_EXTRA_WEIGHTS = (60, 30, 10)  # participants besides the deal's person: 0..2
PROJECT_STATUSES = ("open", "completed", "canceled")
#: Project boards, each with the same phases: projects' `board_id` and `phase_id` name them
#: (phase ids run board by board: board b's phases are (b - 1) * 3 + 1 .. 3).
PROJECT_BOARDS = ("Delivery", "Customer success")
PROJECT_PHASES = ("Planning", "In progress", "Done")
PROJECT_TEMPLATES = ("Onboarding", "Rollout", "Migration")
LEAD_LABELS = (
    ("Hot", "red"),
    ("Warm", "yellow"),
    ("Cold", "blue"),
    ("Partner", "green"),
    ("Churn risk", "purple"),
)
# (id, parent_role_id, name, level, active_flag)
ROLES = (
    (1, None, "(Unassigned users)", 1, True),
    (2, None, "Admins", 1, True),
    (3, 2, "Sales managers", 2, True),
    (4, 3, "Account executives", 3, True),
    (5, 3, "SDRs", 3, True),
    (6, 2, "Partnerships", 2, True),
    (7, None, "Former staff", 1, False),
)
# (name, app, type); descriptions come from the spec example where it has one.
PERMISSION_SETS = (
    ("Deals admin", "sales", "admin"),
    ("Deals regular user", "sales", "regular"),
    ("Global admin", "global", "admin"),
    ("Global regular user", "global", "regular"),
    ("Account settings", "account_settings", "admin"),
    ("Projects regular user", "projects", "regular"),
    ("Campaigns admin", "campaigns", "admin"),
)
GOAL_TYPES = (
    "deals_won",
    "deals_progressed",
    "activities_completed",
    "activities_added",
    "deals_started",
)
MAIL_FOLDERS = ("inbox", "drafts", "sent", "archive")
CALL_OUTCOMES = (
    "connected",
    "no_answer",
    "left_message",
    "left_voicemail",
    "wrong_number",
    "busy",
)
FILE_KINDS = (
    ("Offer", "pdf", "pdf"),
    ("Contract", "docx", "doc"),
    ("Logo", "png", "img"),
    ("Price list", "xlsx", "spreadsheet"),
    ("Meeting recording", "m4a", "audio"),
    ("Site photo", "jpg", "img"),
)
# Deal fields whose changes the deal flow logs (custom field changes only with all_changes=1).
FLOW_FIELDS = ("value", "stage_id", "status", "title", "owner_id", "expected_close_date")
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
# Deals have one field of every type a custom field can have: the 16 types that
# POST /api/v2/dealFields accepts (the read-side enum adds system-only types such as int,
# boolean, varchar_options, json, stage, status, visible_to, price_list).
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
        ("Background", "text"),
        ("Referred by", "people"),
        ("Employer", "org"),
        ("Contact owner backup", "user"),
        ("Best time to call", "time"),
        ("Source campaign", "varchar_auto"),
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
        ("Segments", "set"),
        ("Founded", "date"),
        ("Switchboard", "phone"),
        ("Contract term", "daterange"),
        ("Office hours", "timerange"),
        ("Profile", "text"),
    ),
    "product": (
        ("SKU note", "varchar"),
        ("Weight kg", "double"),
        ("List price", "monetary"),
        ("Product line", "enum"),
        ("Channels", "set"),
        ("Launch date", "date"),
        ("Spec sheet", "text"),
        ("Product manager", "user"),
        ("Availability", "daterange"),
    ),
    "activity": (
        ("Outcome", "enum"),
        ("Agenda", "text"),
        ("Attendee count", "double"),
        ("Topics", "set"),
        ("Follow-up date", "date"),
        ("Meeting room", "varchar"),
    ),
    # Served by the v2-only `/api/v2/projectFields`.
    "project": (
        ("Budget code", "varchar"),
        ("Priority", "enum"),
        ("Workstreams", "set"),
        ("Go-live", "date"),
        ("Project budget", "monetary"),
        ("Sponsor", "user"),
        ("Client contact", "people"),
        ("Scope", "text"),
    ),
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


def _parse_rfc3339(v: str) -> int:
    """Epoch seconds of the sandbox's own RFC 3339 / ISO strings (UTC, 'Z')."""
    return timegm(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S"))


@dataclass
class Table:
    """Compact core of one entity table; index i holds the record with id ids[i]."""

    name: str
    ids: list[Any]
    add: array
    upd: array
    flags: bytearray
    rev: dict[int, int] = field(default_factory=dict)  # index -> times touched
    touch_log: dict[int, list[int]] = field(default_factory=dict)  # index -> touch times
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

    def __init__(self, seed: int = 1, scale: float = 1.0, bulk_edit: int = 0) -> None:
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
        self.token_user = self.active_users[0]  # the API token's user (`is_you`)
        more = random.Random(f"{seed}|more")  # second-batch tables: their own stream
        self._make_more(more, scale)
        for t in self.tables.values():
            if t.name in BASE_COUNTS or t.name in ("files", "projects", "tasks"):
                self._cluster_update_times(rng, t)
        if bulk_edit:
            self._bulk_edit(random.Random(f"{seed}|bulk-edit"), self.tables["deals"], bulk_edit)
        self.max_seeded = max(max(t.upd) for t in self.tables.values() if len(t))
        # Project boards, phases and templates: after the rest, from a stream of their
        # own, so that adding them left every other table as it was.
        meta = random.Random(f"{seed}|project-meta")
        n_phases = len(PROJECT_BOARDS) * len(PROJECT_PHASES)
        self.tables["boards"] = self._make_small(meta, "boards", len(PROJECT_BOARDS))
        self.tables["phases"] = self._make_small(meta, "phases", n_phases)
        templates = self._make_small(meta, "projectTemplates", len(PROJECT_TEMPLATES))
        self.tables["projectTemplates"] = templates
        self.template_links = [
            (meta.randint(1, len(PROJECT_BOARDS)), meta.choice(self.active_users))
            for _ in range(len(templates))
        ]
        self.custom_fields = {e: self._make_custom_fields(e) for e in CUSTOM_FIELD_DEFS}
        self.custom_fields["lead"] = self.custom_fields["deal"]
        self.counts = {k: len(t) for k, t in self.tables.items()}
        self._base_cache: dict[str, str] = {}
        self._index_lock = threading.Lock()
        self._deal_children: dict[str, tuple[array, array]] = {}
        self._threads_by_deal: dict[int, list[int]] | None = None
        self._product_cache: dict[tuple[int, int], tuple[str, float, float]] = {}
        self._live_products_cache: tuple[int, list[int]] = (-1, [])
        self.goals = self._make_goals()

    # ----------------------------------------------------------------- generation

    def _make_table(
        self,
        rng: random.Random,
        name: str,
        n: int,
        uuid_ids: bool = False,
        str_ids: Any = None,
    ) -> Table:
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
        elif str_ids is not None:
            ids = [str_ids(rng) for _ in range(n)]
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

    def _make_more(self, rng: random.Random, scale: float) -> None:
        """Second-batch tables, deleted rows and per-deal child counts (own RNG stream)."""
        counts = {k: max(MORE_MIN[k], round(v * scale)) for k, v in MORE_COUNTS.items()}
        # Small accounts still get a few archived deals and leads (archived late in life).
        for name in ("deals", "leads"):
            self._top_up(rng, self.tables[name], ARCHIVED, 4)
        # A few soft-deleted rows: v2 lists and /v1/notes skip them, /v1/recents shows them.
        for name, share in (
            ("persons", 0.02),
            ("organizations", 0.02),
            ("products", 0.03),
            ("activities", 0.02),
            ("notes", 0.02),
        ):
            self._flag_some(rng, self.tables[name], share, DELETED)
        # The deal (1-based; 0 = none) each activity, note and file hangs on, kept in an
        # array so that the deal -> children index needs no per-record RNG.
        live, nd = self.live_deals, len(self.live_deals)
        shares = {"activities": 0.55, "notes": 0.55, "files": 0.5} if nd else {}
        self.deal_of: dict[str, array] = {}
        self.tables["files"] = self._make_table(rng, "files", counts["files"])
        self._flag_some(rng, self.tables["files"], 0.03, DELETED)
        for name in ("activities", "notes", "files"):
            share = shares.get(name, 0.0)
            self.deal_of[name] = array(
                "i",
                (
                    live[int(rng.random() * nd)] + 1 if rng.random() < share else 0
                    for _ in range(len(self.tables[name]))
                ),
            )
        self.tables["callLogs"] = self._make_table(
            rng, "callLogs", counts["callLogs"], str_ids=lambda r: f"CA{r.getrandbits(112):028x}"
        )
        # Call logs belong to users; the API lists only the token user's (about a third).
        self.call_user = array(
            "q",
            (
                self.token_user if rng.random() < 0.35 else rng.choice(self.active_users)
                for _ in range(counts["callLogs"])
            ),
        )
        self.tables["mailThreads"] = self._make_table(rng, "mailThreads", counts["mailThreads"])
        self._flag_some(rng, self.tables["mailThreads"], 0.02, DELETED)
        projects = self._make_table(rng, "projects", counts["projects"])
        for i in range(len(projects)):
            r, r2 = rng.random(), rng.random()
            f = (1 if r < 0.3 else 2 if r < 0.4 else 0) << STATUS_SHIFT
            projects.flags[i] = f | (ARCHIVED if r2 < 0.1 else DELETED if r2 < 0.15 else 0)
        self._top_up(rng, projects, ARCHIVED, 2)
        self._top_up(rng, projects, DELETED, 2)
        self.tables["projects"] = projects
        self.tables["tasks"] = self._make_table(rng, "tasks", counts["tasks"])
        labels = self._make_small(rng, "leadLabels", len(LEAD_LABELS))
        labels.ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in labels.ids]
        labels.index = {rid: i for i, rid in enumerate(labels.ids)}
        self.tables["leadLabels"] = labels
        self.tables["roles"] = self._make_small(rng, "roles", len(ROLES))
        psets = self._make_small(rng, "permissionSets", len(PERMISSION_SETS))
        psets.ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in psets.ids]
        psets.index = {rid: i for i, rid in enumerate(psets.ids)}
        self.tables["permissionSets"] = psets
        # Per-deal children as offsets (CSR): the ids of deal i's children are
        # off[i]+1 .. off[i+1]. Participants reserve slot 0 for the deal's own person.
        n_deals = len(self.tables["deals"])
        self.dp_off = self._offsets(
            rng.choices(range(len(DEAL_PRODUCT_WEIGHTS)), DEAL_PRODUCT_WEIGHTS, k=n_deals)
        )
        extra = rng.choices(
            range(len(PARTICIPANT_EXTRA_WEIGHTS)), PARTICIPANT_EXTRA_WEIGHTS, k=n_deals
        )
        self.part_off = self._offsets([1 + k for k in extra])
        self.flow_off = self._offsets([rng.randint(1, 6) for _ in range(n_deals)])
        self.msg_off = self._offsets([rng.randint(1, 5) for _ in range(counts["mailThreads"])])

    @staticmethod
    def _offsets(sizes: list[int]) -> array:
        off = array("i", [0])
        total = 0
        for k in sizes:
            total += k
            off.append(total)
        return off

    @staticmethod
    def _top_up(rng: random.Random, t: Table, flag: int, minimum: int) -> None:
        """Make sure at least `minimum` rows carry `flag`, taking recently updated rows."""
        have = sum(1 for f in t.flags if f & flag)
        if have >= minimum:
            return
        free = [i for i in range(len(t)) if not t.flags[i] & (DELETED | ARCHIVED)]
        free.sort(key=lambda i: t.upd[i])
        recent = free[len(free) // 2 :]
        for i in rng.sample(recent, min(minimum - have, len(recent))):
            t.flags[i] |= flag

    @staticmethod
    def _flag_some(rng: random.Random, t: Table, share: float, flag: int) -> None:
        """Set `flag` on about `share` of the rows, and on at least one if the table has 4+."""
        hit = False
        for i in range(len(t)):
            if rng.random() < share:
                t.flags[i] |= flag
                hit = True
        if not hit and len(t) >= 4:
            t.flags[rng.randrange(len(t))] |= flag

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

    @staticmethod
    def _bulk_edit(rng: random.Random, t: Table, n: int) -> None:
        """A mass update, as a workflow or an import makes one (benchmarks only): `n` live
        records of `t` edited four a second, from 200 days before the data set ends."""
        live = [i for i in range(len(t)) if not t.flags[i] & (DELETED | ARCHIVED)]
        start = EPOCH_END - 200 * 86400
        for k, i in enumerate(sorted(rng.sample(live, min(n, len(live))))):
            t.upd[i] = start + k // 4
            t.add[i] = min(t.add[i], t.upd[i])

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
        if stream in ("activities", "notes", "files"):
            d = self.deal_of[stream][i]
            r2 = r.random()
            out: dict[str, Any] = {
                "deal_id": None,
                "person_id": None,
                "org_id": None,
                "lead_id": None,
            }
            if d:
                dl = self.links("deals", d - 1)
                out.update(deal_id=d, person_id=dl["person_id"], org_id=dl["org_id"])
            elif r2 < 0.55:
                p = r.randint(1, n["persons"])
                out.update(person_id=p, org_id=self.links("persons", p - 1)["org_id"])
            elif r2 < 0.84:
                out["org_id"] = r.randint(1, n["organizations"])
            else:
                li = r.randrange(n["leads"])
                ll = self.links("leads", li)
                out.update(
                    lead_id=self.tables["leads"].ids[li],
                    person_id=ll["person_id"],
                    org_id=ll["organization_id"],
                )
            key = "owner_id" if stream == "activities" else "user_id"
            out[key] = owner
            if stream == "activities":
                out["done"] = r.random() < 0.6
            if stream == "files":
                out["product_id"] = r.randint(1, n["products"]) if r.random() < 0.1 else None
                out["activity_id"] = r.randint(1, n["activities"]) if r.random() < 0.1 else None
            return out
        if stream == "callLogs":
            out = {"user_id": self.call_user[i], "deal_id": None, "lead_id": None}
            r2 = r.random()
            if r2 < 0.45:
                d = r.choice(self.live_deals)
                dl = self.links("deals", d)
                out.update(deal_id=d + 1, person_id=dl["person_id"], org_id=dl["org_id"])
            else:
                p = r.randint(1, n["persons"])
                out.update(person_id=p, org_id=self.links("persons", p - 1)["org_id"])
                if r2 > 0.9:
                    out["lead_id"] = self.tables["leads"].ids[r.randrange(n["leads"])]
            out["activity_id"] = r.randint(1, n["activities"]) if r.random() < 0.5 else None
            return out
        if stream == "mailThreads":
            r2 = r.random()
            if r2 < 0.1:
                folders = ["archive"]
            elif r2 < 0.15:
                folders = ["drafts"]
            else:
                folders = [f for f in ("inbox", "sent") if r.random() < 0.7] or ["inbox"]
            d = r.choice(self.live_deals) + 1 if r.random() < 0.4 else None
            person = self.links("deals", d - 1)["person_id"] if d else None
            return {
                "user_id": self.token_user,
                "folders": folders,
                "deal_id": d,
                "lead_id": self.tables["leads"].ids[r.randrange(n["leads"])]
                if not d and r.random() < 0.08
                else None,
                "person_id": person or r.randint(1, n["persons"]),
            }
        if stream == "projects":
            deals = sorted({r.choice(self.live_deals) + 1 for _ in range(r.randint(0, 2))})
            persons = sorted({p for d in deals if (p := self.links("deals", d - 1)["person_id"])})
            orgs = sorted({o for d in deals if (o := self.links("deals", d - 1)["org_id"])})
            board = r.randint(1, 2)
            return {
                "owner_id": owner,
                "board_id": board,
                "phase_id": (board - 1) * 3 + r.randint(1, 3),
                "deal_id": deals,
                "person_id": persons,
                "org_id": orgs,
            }
        if stream == "tasks":
            n_proj = n["projects"]
            parent = i - n_proj + 1 if i >= n_proj and r.random() < 0.25 else None
            return {
                "project_id": i % n_proj + 1,
                "parent_task_id": parent,
                "assignee_id": sorted(set(r.sample(self.active_users, r.randint(0, 2)))),
                "is_done": r.random() < 0.4,
                "is_milestone": r.random() < 0.1,
                "creator_id": owner,
            }
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

    #: Rendered records, when on (`--render-cache`): for benchmarks, so that the sandbox
    #: costs little next to the client it measures. Keyed by everything a record's content
    #: depends on here; emptied by every change to the data.
    render_cache: dict[tuple[Any, ...], dict[str, Any]] | None = None

    def render(
        self, stream: str, i: int, api: str = "v2", opts: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        opts = opts or {}
        cache = self.render_cache
        if cache is None:
            return getattr(self, f"_render_{stream}")(i, api, opts)
        t = self.tables.get(stream)
        state = (t.upd[i], t.flags[i], t.rev.get(i)) if t is not None else ()
        key = (stream, i, api, repr(sorted(opts.items())), *state)
        rec = cache.get(key)
        if rec is None:
            rec = cache[key] = getattr(self, f"_render_{stream}")(i, api, opts)
        return dict(rec)  # callers replace top-level values (custom_fields=...), never nested

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
        wanted = opts.get("include_fields")
        if wanted:
            extras = self.deal_extras(i, rec)
            rec.update({k: extras[k] for k in wanted if k in extras})
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
        if opts.get("include_fields"):
            extras = self.contact_extras("persons", i)
            rec.update({k: extras[k] for k in opts["include_fields"] if k in extras})
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
        if opts.get("include_fields"):
            extras = self.contact_extras("organizations", i)
            rec.update({k: extras[k] for k in opts["include_fields"] if k in extras})
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
        if "attendees" in (opts.get("include_fields") or ()):
            rec["attendees"] = self.activity_attendees(i)
        else:
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
            label_ids=self._lead_label_ids(i),
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

    def _lead_label_ids(self, i: int) -> list[str]:
        r = self._rng("leads", i, "labels")
        ids = self.tables["leadLabels"].ids
        return sorted(r.sample(ids, r.choice((0, 0, 1, 1, 2))))

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
                    "permission_set_id": self.user_permission_sets(uid)[0],
                }
            ],
            active_flag=active,
            timezone_name="Europe/Tallinn",
            timezone_offset="+02:00",
            role_id=self.user_role(uid),
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

    # ----------------------------------------------------------------- second batch: tables

    def _render_files(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["files"]
        r = self._rng("files", i)
        ln = self.links("files", i)
        label, ext, ftype = r.choice(FILE_KINDS)
        fid = t.ids[i]
        rec = self._base("v1:files")
        rec.update(
            id=fid,
            user_id=ln["user_id"],
            deal_id=ln["deal_id"],
            person_id=ln["person_id"],
            org_id=ln["org_id"],
            product_id=ln["product_id"],
            activity_id=ln["activity_id"],
            lead_id=ln["lead_id"],
            project_id=None,
            log_id=None,
            add_time=v1_ts(t.add[i]),
            update_time=v1_ts(t.upd[i]),
            file_name=f"{label.lower().replace(' ', '_')}_{fid}.{ext}",
            file_type=ftype,
            file_size=r.randint(2_000, 25_000_000),
            active_flag=not t.flags[i] & DELETED,
            inline_flag=False,
            remote_location="s3",
            remote_id=f"{label.lower().replace(' ', '_')}_{fid}.{ext}",
            cid="",
            s3_bucket="",
            mail_message_id="",
            mail_template_id="",
            deal_name=self.deal_title(ln["deal_id"]) if ln["deal_id"] else "",
            person_name=self.person_name(ln["person_id"]) if ln["person_id"] else "",
            org_name=self.org_name(ln["org_id"]) if ln["org_id"] else "",
            product_name=self.product_info(ln["product_id"])[0] if ln["product_id"] else "",
            lead_name="",
            project_name="",
            url=f"https://sandbox.pipedrive.example/v1/files/{fid}/download",
            name=f"{label} {fid}{self._rev(t, i)}",
            description=r.choice(("", "", "Signed copy", "Latest version")),
        )
        return rec

    def _render_boards(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["boards"]
        return {
            "id": t.ids[i],
            "name": PROJECT_BOARDS[i] + self._rev(t, i),
            "order_nr": i + 1,
            "add_time": iso_ms(t.add[i]),
            "update_time": iso_ms(t.upd[i]),
        }

    def _render_phases(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["phases"]
        return {
            "id": t.ids[i],
            "name": PROJECT_PHASES[i % len(PROJECT_PHASES)] + self._rev(t, i),
            "board_id": self.phase_board(i),
            "order_nr": i % len(PROJECT_PHASES) + 1,
            "add_time": iso_ms(t.add[i]),
            "update_time": iso_ms(t.upd[i]),
        }

    def phase_board(self, i: int) -> int:
        """The board of the phase at row `i`."""
        return i // len(PROJECT_PHASES) + 1

    def _render_projectTemplates(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["projectTemplates"]
        board, owner = self.template_links[i]
        return {
            "id": t.ids[i],
            "title": f"{PROJECT_TEMPLATES[i]} template" + self._rev(t, i),
            "description": f"Template for {PROJECT_TEMPLATES[i].lower()} projects",
            "projects_board_id": board,
            "owner_id": owner,
            "add_time": iso_ms(t.add[i]),
            "update_time": iso_ms(t.upd[i]),
        }

    def _render_leadLabels(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["leadLabels"]
        name, color = LEAD_LABELS[i]
        return {
            "id": t.ids[i],
            "name": name + self._rev(t, i),
            "color": color,
            "add_time": iso_ms(t.add[i]),
            "update_time": iso_ms(t.upd[i]),
        }

    def user_role(self, uid: int) -> int:
        i = uid - USER_BASE - 1
        if i == 0:
            return 2
        if uid not in self.active_users:
            return 7
        return (3, 4, 4, 5, 5, 6)[i % 6]

    def _render_roles(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        rid, parent, name, level, active = ROLES[i]
        users = self.tables["users"].ids
        return {
            "id": rid,
            "parent_role_id": parent,
            "name": name + self._rev(self.tables["roles"], i),
            "active_flag": active,
            "assignment_count": str(sum(1 for u in users if self.user_role(u) == rid)),
            "sub_role_count": str(sum(1 for x in ROLES if x[1] == rid)),
            "level": level,
        }

    def user_permission_sets(self, uid: int) -> list[str]:
        """Permission set ids of a user: admins get the admin sets, others regular ones."""
        ids = self.tables["permissionSets"].ids
        if uid == self.active_users[0]:
            return [ids[0], ids[2], ids[4]]
        out = [ids[1], ids[3]]
        if (uid - USER_BASE) % 3 == 0:
            out.append(ids[5])
        return out

    def _render_permissionSets(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["permissionSets"]
        name, app, typ = PERMISSION_SETS[i]
        examples = {e["name"]: e for e in TEMPLATES["v1:permissionSets"]["examples"]}
        desc = examples.get(name, {}).get("description") or f"{typ.capitalize()} access to {app}"
        users = self.tables["users"].ids
        return {
            "id": t.ids[i],
            "name": name + self._rev(t, i),
            "description": desc,
            "app": app,
            "type": typ,
            "assignment_count": sum(1 for u in users if t.ids[i] in self.user_permission_sets(u)),
        }

    def _make_goals(self) -> list[dict[str, Any]]:
        """Goals: two per active user, three company goals and one per team."""
        r = random.Random(f"{self.seed}|goals")
        admin = self.active_users[0]
        assignees = [("person", u) for u in self.active_users for _ in range(2)]
        assignees += [("company", COMPANY_ID)] * 3 + [("team", x) for x in TEAM_IDS]
        out = []
        for n, (atype, aid) in enumerate(assignees):
            gtype = GOAL_TYPES[n % len(GOAL_TYPES)]
            params: dict[str, Any] = {"pipeline_id": None}
            if gtype.startswith("deals"):
                params["pipeline_id"] = r.choice((None, [1], [1, 2]))
            if gtype == "deals_progressed":
                params["stage_id"] = r.randint(1, len(PIPELINES) * len(STAGES))
            if gtype.startswith("activities"):
                params = {"activity_type_id": r.choice((None, [1], [1, 2]))}
            metric = "sum" if gtype == "deals_won" and r.random() < 0.6 else "quantity"
            outcome: dict[str, Any] = {
                "target": r.randint(2, 60) * (1000 if metric == "sum" else 1),
                "tracking_metric": metric,
            }
            if metric == "sum":
                outcome["currency_id"] = 1
            start = EPOCH_START + r.randrange(EPOCH_END - EPOCH_START - 400 * 86400)
            start -= start % 86400
            length = r.choice((90, 180, 365))
            who = self.user_name(aid) if atype == "person" else atype
            out.append(
                {
                    "id": hashlib.md5(f"{self.seed}:goal:{n}".encode()).hexdigest(),
                    "owner_id": aid if atype == "person" and r.random() < 0.5 else admin,
                    "title": f"{gtype.replace('_', ' ').capitalize()} - {who} #{n + 1}",
                    "type": {"name": gtype, "params": params},
                    "assignee": {"id": aid, "type": atype},
                    "interval": r.choice(("weekly", "monthly", "quarterly", "yearly")),
                    "duration": {"start": day(start), "end": day(start + length * 86400)},
                    "expected_outcome": outcome,
                    "is_active": r.random() < 0.7,
                    "report_ids": [hashlib.md5(f"{self.seed}:report:{n}".encode()).hexdigest()],
                }
            )
        return out

    def _render_callLogs(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["callLogs"]
        r = self._rng("callLogs", i)
        ln = self.links("callLogs", i)
        outcome = r.choice(CALL_OUTCOMES)
        dur = r.randint(20, 1800) if outcome == "connected" else 0
        start = t.add[i]
        return {
            "id": t.ids[i],
            "activity_id": ln["activity_id"],
            "person_id": ln["person_id"],
            "org_id": ln["org_id"],
            "deal_id": ln["deal_id"],
            "lead_id": ln["lead_id"],
            "subject": r.choice(("Intro call", "Follow-up call", "Pricing call", "Support call")),
            "duration": str(dur),
            "outcome": outcome,
            "from_phone_number": f"+372 5{r.randint(100000, 9999999)}",
            "to_phone_number": f"+{r.randint(1, 49)} {r.randint(100, 999)} {r.randint(1000, 9999)}",
            "has_recording": dur > 0 and r.random() < 0.3,
            # The spec describes these as "YYYY-MM-DD HH:MM:SS" but its example responses
            # (like Pipedrive's) carry ISO 8601 with milliseconds; we follow the example.
            "start_time": iso_ms(start),
            "end_time": iso_ms(start + dur),
            "user_id": ln["user_id"],
            "company_id": COMPANY_ID,
            "note": r.choice((None, "<p>Call back next week</p>", "<p>Sent the offer</p>")),
        }

    def _party(self, pid: int, party_id: int, t: float, latest: bool) -> dict[str, Any]:
        name = self.person_name(pid)
        return {
            "id": party_id,
            "name": name,
            "latest_sent": latest,
            "email_address": f"{name.replace(' ', '.').lower()}{pid}@example.com",
            "message_time": int(t) * 1000,
            "linked_person_id": pid,
            "linked_person_name": name,
            "mail_message_party_id": party_id,
            "linked_organization_id": self.links("persons", pid - 1)["org_id"],
        }

    def _me_party(self, party_id: int, t: float, latest: bool) -> dict[str, Any]:
        uid = self.token_user
        return {
            "id": party_id,
            "name": self.user_name(uid),
            "latest_sent": latest,
            "email_address": self.user_email(uid),
            "message_time": int(t) * 1000,
            "linked_person_id": None,
            "linked_person_name": None,
            "mail_message_party_id": party_id,
            "linked_organization_id": None,
        }

    def _render_mailThreads(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["mailThreads"]
        r = self._rng("mailThreads", i)
        ln = self.links("mailThreads", i)
        n_msg = self.msg_off[i + 1] - self.msg_off[i]
        times = self._message_times(i)
        folders = ln["folders"]
        sent = "sent" in folders
        subject = f"{r.choice(('Offer', 'Meeting', 'Question', 'Invoice', 'Intro'))} #{t.ids[i]}"
        deal = self.tables["deals"]
        party = 500_000 + 10 * t.ids[i]
        rec = self._base("v1:mailThreads")
        rec.update(
            id=t.ids[i],
            account_id=f"sandbox-account-{self.token_user}",
            user_id=ln["user_id"],
            subject=subject + self._rev(t, i),
            snippet=f"Hello, about {subject.lower()}...",
            read_flag=int(r.random() < 0.8),
            mail_tracking_status=r.choice((None, "opened", "not opened")),
            has_attachments_flag=int(r.random() < 0.2),
            has_inline_attachments_flag=0,
            has_real_attachments_flag=0,
            deleted_flag=int(bool(t.flags[i] & DELETED)),
            synced_flag=1,
            smart_bcc_flag=0,
            mail_link_tracking_enabled_flag=0,
            parties={
                "to": [self._party(ln["person_id"], party + 1, times[-1], not sent)],
                "from": [self._me_party(party + 2, times[-1], sent)],
            },
            drafts_parties=[],
            folders=folders,
            version=1 + t.rev.get(i, 0),
            snippet_draft="Draft..." if "drafts" in folders else None,
            snippet_sent="Thanks!" if sent else "",
            message_count=n_msg,
            has_draft_flag=int("drafts" in folders),
            has_sent_flag=int(sent),
            archived_flag=int("archive" in folders),
            shared_flag=int(r.random() < 0.3),
            external_deleted_flag=0,
            first_message_to_me_flag=int(not sent),
            last_message_timestamp=iso_ms(times[-1]),
            first_message_timestamp=iso_ms(times[0]),
            last_message_sent_timestamp=iso_ms(times[-1]) if sent else None,
            last_message_received_timestamp=iso_ms(times[-1]) if "inbox" in folders else None,
            add_time=iso_ms(t.add[i]),
            update_time=iso_ms(t.upd[i]),
            deal_id=ln["deal_id"],
            deal_status=deal.status(ln["deal_id"] - 1) if ln["deal_id"] else None,
            lead_id=ln["lead_id"],
            all_messages_sent_flag=int(folders == ["sent"]),
        )
        return rec

    def _message_times(self, ti: int) -> list[int]:
        """Message times of thread ti: from its add time to its update time, ascending."""
        t = self.tables["mailThreads"]
        n = self.msg_off[ti + 1] - self.msg_off[ti]
        a, u = t.add[ti], t.upd[ti]
        if n == 1:
            return [u]
        return [a + (u - a) * k // (n - 1) for k in range(n)]

    def mail_messages(self, ti: int) -> list[dict[str, Any]]:
        """The messages of mail thread index ti, oldest first."""
        t = self.tables["mailThreads"]
        th = self.render("mailThreads", ti, "v1")
        ln = self.links("mailThreads", ti)
        out = []
        first = self.msg_off[ti]
        times = self._message_times(ti)
        for k, mt in enumerate(times):
            r = self._rng("mailMessages", first + k)
            outgoing = "sent" in ln["folders"] and (k % 2 == 1 or ln["folders"] == ["sent"])
            them = self._party(ln["person_id"], 700_000 + 2 * (first + k), mt, False)
            me = self._me_party(700_001 + 2 * (first + k), mt, False)
            for p in (them, me):
                for key in ("latest_sent", "message_time", "linked_organization_id"):
                    p.pop(key)
            rec = self._base("v1:mailMessages")
            rec.update(
                id=first + k + 1,
                account_id=th["account_id"],
                user_id=th["user_id"],
                subject=("Re: " if k else "") + th["subject"],
                snippet=r.choice(("Thanks for the call", "Please find attached", "Sounds good")),
                read_flag=1,
                mail_tracking_status=None,
                has_attachments_flag=0,
                has_inline_attachments_flag=0,
                has_real_attachments_flag=0,
                deleted_flag=th["deleted_flag"],
                synced_flag=1,
                smart_bcc_flag=0,
                mail_link_tracking_enabled_flag=0,
                **{"from": [me] if outgoing else [them], "to": [them] if outgoing else [me]},
                cc=[],
                bcc=[],
                body_url=f"https://sandbox.pipedrive.example/mail/{first + k + 1}/body",
                mail_thread_id=t.ids[ti],
                draft=None,
                draft_flag=0,
                has_body_flag=1,
                sent_flag=int(outgoing),
                sent_from_pipedrive_flag=int(outgoing and r.random() < 0.5),
                message_time=iso_ms(mt),
                add_time=iso_ms(mt),
                update_time=iso_ms(max(mt, t.upd[ti]) if k == len(times) - 1 else mt),
            )
            out.append(rec)
        return out

    def _render_projects(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["projects"]
        r = self._rng("projects", i)
        ln = self.links("projects", i)
        a, u = t.add[i], t.upd[i]
        start = a + r.randint(0, 20) * 86400
        rec = self._base("v2:projects")
        rec.update(
            id=t.ids[i],
            title=f"{r.choice(('Onboarding', 'Rollout', 'Migration', 'Pilot'))} {t.ids[i]}"
            + self._rev(t, i),
            description=r.choice((None, "Customer implementation", "Internal project")),
            status="deleted"
            if t.flags[i] & DELETED
            else PROJECT_STATUSES[(t.flags[i] >> STATUS_SHIFT) & 3],
            board_id=ln["board_id"],
            phase_id=ln["phase_id"],
            owner_id=ln["owner_id"],
            start_date=day(start),
            end_date=day(start + r.randint(14, 200) * 86400) if r.random() < 0.8 else None,
            deal_ids=ln["deal_id"],
            person_ids=ln["person_id"],
            org_ids=ln["org_id"],
            label_ids=sorted(r.sample((1, 2, 3), r.randint(0, 2))),
            health_status=r.choice((None, 10, 20, 30)),
            add_time=iso_ms(a),
            update_time=iso_ms(u),
            status_change_time=iso_ms(a + (u - a) // 2),
            archive_time=iso_ms(u) if t.flags[i] & ARCHIVED else None,
            custom_fields=self.custom_v2("project", r, a),
        )
        return rec

    def _render_tasks(self, i: int, api: str, opts: dict[str, Any]) -> dict[str, Any]:
        t = self.tables["tasks"]
        r = self._rng("tasks", i)
        ln = self.links("tasks", i)
        a, u = t.add[i], t.upd[i]
        return {
            "id": t.ids[i],
            "title": f"{r.choice(('Kickoff', 'Configure', 'Train users', 'Review', 'Sign-off'))}"
            f" {t.ids[i]}{self._rev(t, i)}",
            "creator_id": ln["creator_id"],
            "description": r.choice((None, "See the project plan")),
            "project_id": ln["project_id"],
            "is_done": ln["is_done"],
            "is_milestone": ln["is_milestone"],
            "due_date": day(a + r.randint(3, 60) * 86400) if r.random() < 0.7 else None,
            "start_date": day(a) if r.random() < 0.5 else None,
            "parent_task_id": ln["parent_task_id"],
            "assignee_ids": ln["assignee_id"],
            "priority": r.choice((None, 1, 2, 3)),
            "add_time": iso_ms(a),
            "update_time": iso_ms(u),
            "marked_as_done_time": iso_ms(u) if ln["is_done"] else None,
        }

    # ----------------------------------------------------------------- deal children

    def deal_title(self, did: int) -> str:
        """A deal's title as rendered (without rendering the whole deal)."""
        t = self.tables["deals"]
        i = did - 1
        dl = self.links("deals", i)
        who = self.org_name(dl["org_id"]) if dl["org_id"] else self.person_name(dl["person_id"])
        return f"{who} deal{self._rev(t, i)}"

    def product_info(self, pid: int) -> tuple[str, float, float]:
        """(name, price, tax) of a product, cached: deal products need them often."""
        key = (pid, self.tables["products"].rev.get(pid - 1, 0))  # a touch renames it
        hit = self._product_cache.get(key)
        if hit is None:
            p = self.render("products", pid - 1, "v2")
            hit = (p["name"], p["prices"][0]["price"], p["tax"])
            self._product_cache[key] = hit
        return hit

    def deal_products(self, di: int) -> list[dict[str, Any]]:
        """Products attached to deal index di (v2 shape), in order_nr order."""
        t = self.tables["deals"]
        lo, hi = self.dp_off[di], self.dp_off[di + 1]
        if lo == hi:
            return []
        a, u = t.add[di], t.upd[di]
        live = self._live_products()
        currency = self.render("deals", di, "v2")["currency"]
        out = []
        for k in range(hi - lo):
            r = self._rng("dealProducts", lo + k)
            pid = live[r.randrange(len(live))] + 1
            name, price, tax = self.product_info(pid)
            qty = r.choice((1, 1, 2, 3, 5, 10))
            disc = r.choice((0, 0, 0, 5, 10))
            added = a + (u - a) * k // (hi - lo) if u > a else a
            upd = min(u, added + int(r.random() * 7 * 86400))
            if k == 0 and t.rev.get(di):
                upd = u  # a touched deal changed its first product too
            total = round(qty * price * (1 - disc / 100), 2)
            rec = self._base("v2:dealProducts")
            rec.update(
                id=lo + k + 1,
                sum=total,
                tax=tax,
                deal_id=di + 1,
                name=name,
                product_id=pid,
                product_variation_id=None,
                order_nr=k + 1,
                add_time=rfc3339(added),
                update_time=rfc3339(upd),
                comments=r.choice(("", "", "Annual licence", "Rush delivery")),
                currency=currency,
                discount=disc,
                discount_type="percentage",
                quantity=qty,
                item_price=price,
                tax_method=r.choice(("inclusive", "exclusive", "none")),
                is_enabled=True,
                billing_frequency=r.choice(("one-time", "one-time", "monthly", "annually")),
                billing_frequency_cycles=None,
                billing_start_date=day(added) if r.random() < 0.3 else None,
            )
            out.append(rec)
        return out

    def _live_products(self) -> list[int]:
        products = self.tables["products"]
        if self._live_products_cache[0] != products.version:
            live = [k for k in range(len(products)) if not products.flags[k] & DELETED]
            self._live_products_cache = (products.version, live or [0])
        return self._live_products_cache[1]

    def deal_product_index(self, dpid: int) -> tuple[int, int] | None:
        """(deal index, position) of deal-product id dpid."""
        if not 1 <= dpid <= self.dp_off[-1]:
            return None
        di = bisect_right(self.dp_off, dpid - 1) - 1
        return di, dpid - 1 - self.dp_off[di]

    def participant_persons(self, di: int) -> list[tuple[int, int]]:
        """(participant id, person id) of deal index di: its own person first."""
        lo, hi = self.part_off[di], self.part_off[di + 1]
        own = self.links("deals", di)["person_id"]
        r = self._rng("participants", di)
        out = [(lo + 1, own)] if own else []
        seen = {own}
        for k in range(1, hi - lo):
            p = r.randint(1, self.counts["persons"])
            if p not in seen:
                seen.add(p)
                out.append((lo + k + 1, p))
        return out

    def deal_participants(self, di: int) -> list[dict[str, Any]]:
        t = self.tables["deals"]
        a, u = t.add[di], t.upd[di]
        title = self.deal_title(di + 1)
        out = []
        for k, (part_id, pid) in enumerate(self.participant_persons(di)):
            person = self.v1_person(pid - 1)
            when = a if k == 0 else a + (u - a) * k // 4
            adder = self.links("deals", di)["owner_id"]
            rec = self._base("v1:dealParticipants")
            rec.update(
                id=part_id,
                person_id={
                    "active_flag": person["active_flag"],
                    "name": person["name"],
                    "email": person["email"],
                    "phone": person["phone"],
                    "owner_id": person["owner_id"]["value"],
                    "value": pid,
                },
                add_time=v1_ts(when),
                active_flag=True,
                related_item_data={"deal_id": di + 1, "title": title},
                person=person,
                added_by_user_id={**self.user_ref(adder), "value": adder},
                related_item_type="deal",
                related_item_id=di + 1,
            )
            out.append(rec)
        return out

    def user_ref(self, uid: int) -> dict[str, Any]:
        return {
            "id": uid,
            "name": self.user_name(uid),
            "email": self.user_email(uid),
            "has_pic": 0,
            "pic_hash": None,
            "active_flag": uid in self.active_users,
        }

    def _build_deal_children(self, stream: str) -> tuple[array, array]:
        """Deal -> child indices of `stream` (activities, notes, files) as CSR arrays."""
        with self._index_lock:
            hit = self._deal_children.get(stream)
            if hit is not None:
                return hit
            of = self.deal_of[stream]
            n_deals = len(self.tables["deals"])
            sizes = [0] * (n_deals + 1)
            for d in of:
                sizes[d] += 1  # d is 1-based; slot 0 collects the unlinked ones
            off = array("i", [0] * (n_deals + 2))
            for d in range(n_deals + 1):
                off[d + 1] = off[d] + sizes[d]
            pos = array("i", off)
            idx = array("i", bytes(4 * len(of)))
            for i, d in enumerate(of):
                idx[pos[d]] = i
                pos[d] += 1
            self._deal_children[stream] = (off, idx)
            return off, idx

    def deal_children(self, stream: str, di: int, live_only: bool = True) -> list[int]:
        """Indices of `stream` records linked to deal index di (not deleted ones)."""
        off, idx = self._build_deal_children(stream)
        t = self.tables[stream]
        d = di + 1
        rows = idx[off[d] : off[d + 1]]
        return [i for i in rows if not (live_only and t.flags[i] & DELETED)]

    def threads_of_deal(self, di: int) -> list[int]:
        with self._index_lock:
            if self._threads_by_deal is None:
                t = self.tables["mailThreads"]
                by: dict[int, list[int]] = {}
                for i in range(len(t)):
                    d = self.links("mailThreads", i)["deal_id"]
                    if d and not t.flags[i] & DELETED:
                        by.setdefault(d - 1, []).append(i)
                self._threads_by_deal = by
            return self._threads_by_deal.get(di, [])

    def deal_flow(self, di: int) -> list[dict[str, Any]]:
        """The deal's flow (change log and linked items), newest first.

        Every entry carries `_custom` (a custom-field change, shown only with all_changes=1)
        and `_kind` (the `items` filter names that select it); the caller strips them."""
        t = self.tables["deals"]
        a, u = t.add[di], t.upd[di]
        did = di + 1
        lo, hi = self.flow_off[di], self.flow_off[di + 1]
        deal = self.render("deals", di, "v2")
        cfs = self.custom_fields["deal"]
        entries: list[dict[str, Any]] = []
        n = hi - lo
        for k in range(n):
            r = self._rng("dealFlow", lo + k)
            when = u if k == n - 1 else a + (u - a) * (k + 1) // (n + 1)
            custom = r.random() < 0.2
            if custom:
                cf = r.choice(cfs)
                key, old, new = cf.key, None, f"value {k}"
            else:
                key = r.choice(FLOW_FIELDS)
                old, new = self._flow_values(key, deal, r)
            entries.append(self._flow_change(lo + k + 1, did, key, old, new, when, deal, custom))
        base = deal["title"].split(" (rev ")[0]
        for n_rev, when in enumerate(t.touch_log.get(di, []), start=1):
            old = base if n_rev == 1 else f"{base} (rev {n_rev - 1})"
            new = f"{base} (rev {n_rev})"
            cid = 1_000_000_000 + di * 64 + n_rev  # touched after seeding: ids past the seed
            entries.append(self._flow_change(cid, did, "title", old, new, when, deal, False))
        for ai in self.deal_children("activities", di):
            act = self.v1_activity(ai)
            kind = ("activity",) if act["done"] else ("activity", "plannedActivity")
            entries.append(
                {
                    "object": "activity",
                    "timestamp": act["add_time"],
                    "data": act,
                    "_custom": False,
                    "_kind": kind,
                }
            )
        for stream, obj in (("notes", "note"), ("files", "file")):
            for ci in self.deal_children(stream, di):
                rec = self.render(stream, ci, "v1")
                entries.append(
                    {
                        "object": obj,
                        "timestamp": rec["add_time"],
                        "data": rec,
                        "_custom": False,
                        "_kind": (obj,),
                    }
                )
        entries.sort(key=lambda e: (e["timestamp"], e["object"], e["data"]["id"]), reverse=True)
        return entries

    def _flow_values(self, key: str, deal: dict[str, Any], r: random.Random) -> tuple[Any, Any]:
        cur = deal.get(key)
        if key == "value":
            return round((cur or 0) * r.uniform(0.5, 0.9), 2), cur
        if key == "stage_id":
            return max(1, (cur or 2) - 1), cur
        if key == "status":
            return "open", cur
        if key == "owner_id":
            return r.choice(self.active_users), cur
        return None, cur

    def _flow_change(
        self,
        cid: int,
        did: int,
        key: str,
        old: Any,
        new: Any,
        when: float,
        deal: dict[str, Any],
        custom: bool,
    ) -> dict[str, Any]:
        return {
            "object": "dealChange",
            "timestamp": v1_ts(when),
            "data": {
                "id": cid,
                "item_id": did,
                "user_id": deal["owner_id"],
                "field_key": key,
                "old_value": old,
                "new_value": new,
                "is_bulk_update_flag": None,
                "log_time": v1_ts(when),
                "change_source": "app",
                "change_source_user_agent": "Mozilla/5.0 (sandbox)",
                "additional_data": [],
            },
            "_custom": custom,
            "_kind": ("change", "dealChange"),
        }

    # ----------------------------------------------------------------- include_fields

    def deal_extras(self, di: int, rec: dict[str, Any] | None = None) -> dict[str, Any]:
        """The optional deal fields of v2 `include_fields`, consistent with the children."""
        t = self.tables["deals"]
        r = self._rng("deals", di, "extras")
        acts = self.deal_children("activities", di)
        done = [ai for ai in acts if self.links("activities", ai)["done"]]
        undone = [ai for ai in acts if ai not in set(done)]
        threads = self.threads_of_deal(di)
        tt = self.tables["mailThreads"]
        inbox = [tt.upd[x] for x in threads if "inbox" in self.links("mailThreads", x)["folders"]]
        sent = [tt.upd[x] for x in threads if "sent" in self.links("mailThreads", x)["folders"]]
        won = None
        if t.status(di) == "won":
            won = (rec or self.render("deals", di, "v2"))["won_time"]
        return {
            "next_activity_id": min(undone) + 1 if undone else None,
            "last_activity_id": max(done) + 1 if done else None,
            "first_won_time": won,
            "products_count": self.dp_off[di + 1] - self.dp_off[di],
            "files_count": len(self.deal_children("files", di)),
            "notes_count": len(self.deal_children("notes", di)),
            "followers_count": r.randint(1, 3),
            "email_messages_count": sum(self.msg_off[x + 1] - self.msg_off[x] for x in threads),
            "activities_count": len(acts),
            "done_activities_count": len(done),
            "undone_activities_count": len(undone),
            "participants_count": len(self.participant_persons(di)),
            "last_incoming_mail_time": rfc3339(max(inbox)) if inbox else None,
            "last_outgoing_mail_time": rfc3339(max(sent)) if sent else None,
            "smart_bcc_email": f"sandbox+deal{di + 1}@pipedrivemail.com",
            "source_lead_id": None,
        }

    def contact_extras(self, stream: str, i: int) -> dict[str, Any]:
        """Optional person/organization fields: plausible, deterministic per record."""
        r = self._rng(stream, i, "extras")
        n_act = self.counts["activities"]
        done, undone = r.randint(0, 12), r.randint(0, 4)
        open_d, won, lost = r.randint(0, 4), r.randint(0, 3), r.randint(0, 2)
        t = self.tables[stream]
        mail = r.random() < 0.5
        out: dict[str, Any] = {
            "next_activity_id": r.randint(1, n_act) if undone else None,
            "last_activity_id": r.randint(1, n_act) if done else None,
            "open_deals_count": open_d,
            "related_open_deals_count": open_d + r.randint(0, 2),
            "closed_deals_count": won + lost,
            "related_closed_deals_count": won + lost + r.randint(0, 2),
            "email_messages_count": r.randint(0, 40) if mail else 0,
            "activities_count": done + undone,
            "done_activities_count": done,
            "undone_activities_count": undone,
            "files_count": r.randint(0, 5),
            "notes_count": r.randint(0, 8),
            "followers_count": r.randint(1, 3),
            "won_deals_count": won,
            "related_won_deals_count": won + r.randint(0, 1),
            "lost_deals_count": lost,
            "related_lost_deals_count": lost + r.randint(0, 1),
            "last_incoming_mail_time": rfc3339(t.upd[i] - r.randrange(86400 * 30))
            if mail
            else None,
            "last_outgoing_mail_time": rfc3339(t.upd[i] - r.randrange(86400 * 30))
            if mail
            else None,
            "smart_bcc_email": f"sandbox+{stream[:-1]}{t.ids[i]}@pipedrivemail.com",
        }
        if stream == "persons":
            out["participant_open_deals_count"] = r.randint(0, 2)
            out["participant_closed_deals_count"] = r.randint(0, 2)
            out["marketing_status"] = r.choice(
                ("no_consent", "no_consent", "subscribed", "unsubscribed", "archived")
            )
            out["doi_status"] = r.choice(("confirmed", "pending"))
        else:
            out["people_count"] = r.randint(0, 12)
        return out

    def activity_attendees(self, i: int) -> list[dict[str, Any]]:
        r = self._rng("activities", i, "attendees")
        ln = self.links("activities", i)
        owner = ln["owner_id"]
        out = [
            {
                "email": self.user_email(owner),
                "name": self.user_name(owner),
                "status": "accepted",
                "is_organizer": True,
                "person_id": None,
                "user_id": owner,
            }
        ]
        if ln["person_id"]:
            name = self.person_name(ln["person_id"])
            out.append(
                {
                    "email": f"{name.replace(' ', '.').lower()}{ln['person_id']}@example.com",
                    "name": name,
                    "status": r.choice(("accepted", "tentative", "noreply", "declined")),
                    "is_organizer": False,
                    "person_id": ln["person_id"],
                    "user_id": None,
                }
            )
        if r.random() < 0.3:
            out.append(
                {
                    "email": f"guest{i}@external.example",
                    "name": None,
                    "status": "noreply",
                    "is_organizer": False,
                    "person_id": None,
                    "user_id": None,
                }
            )
        return out

    # ----------------------------------------------------------------- v1 shapes (recents)

    def _v1_fill(self, item: str, rec: dict[str, Any]) -> dict[str, Any]:
        """A v1 record of recents item type `item`: every documented key, values from rec
        (a v2 render) with v2 timestamps turned into v1 ones."""
        out: dict[str, Any] = {}
        for k in TEMPLATES["v1:recents"]["variant_properties"][item]:
            v = rec.get(k)
            if isinstance(v, str) and (k.endswith("_time") or k == "timestamp") and "T" in v:
                v = v1_ts(_parse_rfc3339(v))
            out[k] = v
        return out

    def custom_v2_to_v1(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cf in self.custom_fields[entity]:
            k, ft, v = cf.key, cf.field_type, values.get(cf.key)
            if ft == "monetary":
                out[k], out[k + "_currency"] = (v["value"], v["currency"]) if v else (None, None)
            elif ft in ("daterange", "timerange"):
                out[k], out[k + "_until"] = (v["from"], v["until"]) if v else (None, None)
            elif ft == "address":
                out[k] = v["value"] if v else None
                for part in ADDRESS_PARTS:
                    out[f"{k}_{part}"] = v.get(part) if v else None
            elif ft == "enum":
                out[k] = str(v) if v is not None else None
            elif ft == "set":
                out[k] = ",".join(str(x) for x in v) if v else None
            elif ft in ("user", "org", "people"):
                out[k] = self._ref_v1(ft, v) if v is not None else None
            else:
                out[k] = v
        return out

    def v1_deal(self, di: int) -> dict[str, Any]:
        rec = self.render("deals", di, "v2")
        out = self._v1_fill("deal", {**rec, **self.deal_extras(di, rec)})
        t = self.tables["deals"]
        stage = rec["stage_id"]
        prob = rec["probability"] if rec["probability"] is not None else 20 * ((stage - 1) % 5 + 1)
        sym = {c[0]: c[2] for c in CURRENCIES}.get(rec["currency"], "")
        out.update(
            user_id=rec["owner_id"],
            active=rec["status"] == "open",
            deleted=bool(t.flags[di] & DELETED),
            visible_to=str(rec["visible_to"]),
            label=",".join(str(x) for x in rec["label_ids"]) or None,
            stage_order_nr=(stage - 1) % len(STAGES) + 1,
            person_name=self.person_name(rec["person_id"]) if rec["person_id"] else None,
            org_name=self.org_name(rec["org_id"]) if rec["org_id"] else None,
            owner_name=self.user_name(rec["owner_id"]),
            formatted_value=f"{sym}{rec['value']:,}",
            weighted_value=round(rec["value"] * prob / 100, 2),
            formatted_weighted_value=f"{sym}{round(rec['value'] * prob / 100, 2):,}",
            weighted_value_currency=rec["currency"],
            cc_email=f"sandbox+deal{di + 1}@pipedrivemail.com",
            org_hidden=False,
            person_hidden=False,
        )
        out.update(self.custom_v2_to_v1("deal", rec["custom_fields"]))
        return out

    def v1_person(self, pi: int) -> dict[str, Any]:
        rec = self.render("persons", pi, "v2")
        out = self._v1_fill("person", {**rec, **self.contact_extras("persons", pi)})
        org = rec["org_id"]
        owner = rec["owner_id"]
        out.update(
            company_id=COMPANY_ID,
            active_flag=not rec["is_deleted"],
            phone=rec["phones"] or [{"value": "", "primary": True}],
            email=rec["emails"],
            first_char=rec["name"][:1].lower(),
            visible_to=str(rec["visible_to"]),
            label=rec["label_ids"][0] if rec["label_ids"] else None,
            org_name=self.org_name(org) if org else None,
            owner_name=self.user_name(owner),
            cc_email=f"sandbox+person{rec['id']}@pipedrivemail.com",
            owner_id={**self.user_ref(owner), "value": owner},
            org_id={**self._ref_v1("org", org), "label_ids": []} if org else None,
            picture_id=None,
            next_activity_date=None,
            next_activity_time=None,
            last_activity_date=None,
            merge_what_id=None,
        )
        out.update(self.custom_v2_to_v1("person", rec["custom_fields"]))
        return out

    def v1_organization(self, oi: int) -> dict[str, Any]:
        rec = self.render("organizations", oi, "v2")
        out = self._v1_fill("organization", {**rec, **self.contact_extras("organizations", oi)})
        addr = rec["address"] or {}
        out.update(
            company_id=COMPANY_ID,
            active_flag=not rec["is_deleted"],
            picture_id=None,
            country_code=None,
            first_char=rec["name"][:1].lower(),
            visible_to=str(rec["visible_to"]),
            label=rec["label_ids"][0] if rec["label_ids"] else None,
            owner_name=self.user_name(rec["owner_id"]),
            cc_email=f"sandbox+organization{rec['id']}@pipedrivemail.com",
            address=addr.get("value"),
            next_activity_date=None,
            next_activity_time=None,
            last_activity_date=None,
        )
        for part in ADDRESS_PARTS:
            out[f"address_{part}"] = addr.get(part)
        out.update(self.custom_v2_to_v1("organization", rec["custom_fields"]))
        return out

    def v1_product(self, pi: int) -> dict[str, Any]:
        rec = self.render("products", pi, "v2")
        out = self._v1_fill("product", rec)
        out.update(
            tax=rec["tax"],
            active_flag=not rec["is_deleted"],
            selectable=rec["is_linkable"],
            first_char=rec["name"][:1].lower(),
            visible_to=str(rec["visible_to"]),
            files_count=None,
        )
        out.update(self.custom_v2_to_v1("product", rec["custom_fields"]))
        return out

    def v1_activity(self, ai: int) -> dict[str, Any]:
        rec = self.render("activities", ai, "v2")
        out = self._v1_fill("activity", rec)
        loc = rec["location"] or {}
        did = rec["deal_id"]
        out.update(
            user_id=rec["owner_id"],
            assigned_to_user_id=rec["owner_id"],
            created_by_user_id=rec["creator_user_id"],
            update_user_id=rec["owner_id"],
            company_id=COMPANY_ID,
            busy_flag=rec["busy"],
            active_flag=not rec["is_deleted"],
            due_time=(rec["due_time"] or "")[:5],
            duration=(rec["duration"] or "")[:5],
            participants=[
                {"person_id": p["person_id"], "primary_flag": p["primary"]}
                for p in rec["participants"]
            ],
            attendees=None,
            location=loc.get("value"),
            org_name=self.org_name(rec["org_id"]) if rec["org_id"] else None,
            person_name=self.person_name(rec["person_id"]) if rec["person_id"] else None,
            deal_title=self.deal_title(did) if did else None,
            owner_name=self.user_name(rec["owner_id"]),
            person_dropbox_bcc="sandbox@pipedrivemail.com",
            deal_dropbox_bcc=f"sandbox+deal{did}@pipedrivemail.com" if did else None,
            series=[],
            file=None,
            reference_type=None,
            reference_id=None,
        )
        for part in ADDRESS_PARTS:
            out[f"location_{part}"] = loc.get(part)
        out.update(self.custom_v2_to_v1("activity", rec["custom_fields"]))
        return out

    def v1_pipeline(self, i: int) -> dict[str, Any]:
        rec = self.render("pipelines", i, "v2")
        out = self._v1_fill("pipeline", rec)
        out.update(
            url_title=PIPELINES[i].lower(),
            active=not rec["is_deleted"],
            deal_probability=rec["is_deal_probability_enabled"],
        )
        return out

    def v1_stage(self, i: int) -> dict[str, Any]:
        rec = self.render("stages", i, "v2")
        out = self._v1_fill("stage", rec)
        out.update(
            active_flag=not rec["is_deleted"],
            rotten_flag=rec["is_deal_rot_enabled"],
            rotten_days=rec["days_to_rotten"],
        )
        return out

    RECENT_ITEMS = {
        "activity": "activities",
        "activityType": "activityTypes",
        "deal": "deals",
        "file": "files",
        "filter": "filters",
        "note": "notes",
        "person": "persons",
        "organization": "organizations",
        "pipeline": "pipelines",
        "product": "products",
        "stage": "stages",
        "user": "users",
    }

    def recent_data(self, item: str, i: int) -> dict[str, Any]:
        """The `data` of a /v1/recents entry: the v1 shape of that item type."""
        conv = {
            "deal": self.v1_deal,
            "person": self.v1_person,
            "organization": self.v1_organization,
            "product": self.v1_product,
            "activity": self.v1_activity,
            "pipeline": self.v1_pipeline,
            "stage": self.v1_stage,
        }.get(item)
        if conv is not None:
            return conv(i)
        return self.render(self.RECENT_ITEMS[item], i, "v1")

    # ----------------------------------------------------------------- field definitions

    STANDARD_SOURCES = {
        "deal": "v2:deals",
        "person": "v2:persons",
        "organization": "v2:organizations",
        "product": "v2:products",
        "activity": "v2:activities",
        "note": "v1:notes",
        "lead": "v1:leads",
        "project": "v2:projects",
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
        if entity == "project":  # the spec's projectFields rows have no description
            for row in out:
                del row["description"]
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
