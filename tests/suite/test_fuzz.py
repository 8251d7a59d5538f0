"""Fuzzing (issue 9, the suite): Hypothesis posts every form of the session page (in each state
of a session), the discharge form and patient registration, and the forms only a physician
reaches (sign, addendum, rate override, protocol edit, ledger discrepancy, patient edit, plan)
or only the administrator (staff, devices, audit export), with arbitrary text, huge and
negative numbers, unicode, control characters, empty and missing fields.

For every answer: never a 500; a refusal (4xx) leaves every table as it was (no partial
write); nothing posted comes back unescaped. The forms are found by reading the pages, so a
form added to them is fuzzed without a change here.

Slow: runs with INFUSION_SUITE=1 (tests/suite/run_suite.py sets it), FUZZ_EXAMPLES per form.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infusion_tracker.extensions import db
from infusion_tracker.timeutil import utcnow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("INFUSION_SUITE"),
                       reason="the slow suite: python tests/suite/run_suite.py"),
]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
# The physician's and administrator's forms: fewer draws each (there are many more forms, and
# each draw of a long form already lands hostile values in several fields).
FEWER = max(3, EXAMPLES // 10)
SKIP_ACTIONS = ("/logout", "/account/keep-alive")  # end or extend the fuzzer's own sign-in
REQUESTS = {"count": 0}

PAYLOADS = [
    "", " ", "0", "-1", "-0", "1e309", "-1e309", "NaN", "inf", "99999999999999999999",
    "-99999999999999999999", "18446744073709551616", "9999-12-31T23:59", "0001-01-01T00:00",
    "2026-02-30T25:61", "\x00", "a\x00b", "\u202e\u0000\ufeff", "😀" * 40, "x" * 5000,
    "<script>fz(1)</script>", '"><img src=x onerror=fz(1)>', "'><svg/onload=fz(1)>",
    "{{7*7}}", "' OR 1=1 --", "../../etc/passwd", "%00", "\r\n\r\nX-Injected: 1",
]


class Forms(HTMLParser):
    """Every <form method=post> of a page: its action and what a browser would post."""

    def __init__(self):
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._form: dict[str, str] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._form = {}
            self.forms.append((a.get("action") or "", self._form))
        elif self._form is None or not a.get("name") and tag != "option":
            return
        elif tag in ("input", "textarea"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                self._form.setdefault(a["name"], "")
            else:
                self._form[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self._select = a["name"]
            self._form.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in a:
            self._form[self._select] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def forms_on(html: str, url: str) -> list[tuple[str, dict[str, str]]]:
    parser = Forms()
    parser.feed(html)
    # A form without an action posts to its own page.
    return [(action or url, fields) for action, fields in parser.forms
            if not action.startswith(SKIP_ACTIONS)]


# Values that make a form valid, by field name (after the prefix), so that a form with one
# or two hostile fields gets past validation into the services and onto the next page.
VALID = {
    "systolic": "124", "diastolic": "78", "heart_rate": "70", "resp_rate": "14", "spo2": "98",
    "o2_room_air": "y", "phase": "infusion", "event_type": "nausea", "severity": "mild",
    "infusion_action": "none", "first_name": "Fuzz", "last_name": "Patient",
    "date_of_birth": "1980-01-01", "sex": "female", "reason": "fuzzing", "note": "fuzzing",
}


def valid_base(fields: dict[str, str]) -> dict[str, str]:
    return {name: VALID.get(name.rsplit("-", 1)[-1], value) or value
            for name, value in fields.items()}


HOSTILE = st.one_of(
    st.none(),  # the field is missing
    st.sampled_from(PAYLOADS),
    st.text(max_size=300),  # any unicode, control characters included
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def submissions(fields: dict[str, str]):
    """Every field hostile at once, or a valid form with one to three hostile fields."""
    names = sorted(fields)
    if not names:
        return st.just({})
    base = valid_base(fields)
    return st.one_of(
        st.fixed_dictionaries({name: st.one_of(st.just(fields[name]), HOSTILE)
                               for name in names}),
        st.dictionaries(st.sampled_from(names), HOSTILE, min_size=1, max_size=3).map(
            lambda hostile: {**base, **hostile}),
    )


def table_state() -> dict[str, int]:
    """Row counts of every table, and the sum of the session versions (a bumped version with
    no row added is a write too)."""
    with db.engine.connect() as conn:
        counts = {table.name: conn.execute(sa.select(sa.func.count()).select_from(table))
                  .scalar() for table in db.metadata.sorted_tables}
        counts["versions"] = conn.execute(sa.text(
            "SELECT coalesce(sum(version), 0) FROM infusion_session")).scalar()
    return counts


def reflected(posted: dict[str, str], body: str, page: str) -> list[str]:
    """Posted markup that appears raw in the answer (and was not on the page already)."""
    return [value for value in posted.values()
            if re.search(r"<[a-zA-Z/!]", value) and value in body and value not in page]


MARKUP = "<script>fz(1)</script>"


def check(client, action: str, data: dict[str, str], page: str) -> None:
    """Post; then: no 500, no partial write on a refusal, nothing reflected unescaped."""
    before = table_state()
    answer = client.post(action, data=data)
    REQUESTS["count"] += 1
    # Markup matters where a browser renders it: a CSV download (the audit export) holds what
    # was typed as typed.
    body = answer.get_data(as_text=True) if answer.mimetype == "text/html" else ""
    where = f"{action} {data!r}"
    assert answer.status_code < 500, f"{answer.status_code} at {where}"
    if answer.status_code >= 400:
        assert table_state() == before, f"partial write on a {answer.status_code}: {where}"
    elif answer.status_code == 302 and answer.headers["Location"].startswith("/"):
        # What was saved is shown on the next page: it must come back escaped there too.
        body += client.get(answer.headers["Location"]).get_data(as_text=True)
        REQUESTS["count"] += 1
    assert not reflected(data, body, page), f"reflected unescaped at {where}"


def fuzz_form(client, page_url: str, action: str, fields: dict[str, str],
              examples: int = EXAMPLES) -> None:
    page = client.get(page_url).get_data(as_text=True)
    # First, markup in each field of an otherwise valid form, one field at a time (random
    # draws seldom make the rest of a long form valid at the same time).
    for name in sorted(fields):
        check(client, action, {**valid_base(fields), name: MARKUP}, page)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(submissions(fields))
    def post(values):
        check(client, action, {k: v for k, v in values.items() if v is not None}, page)

    post()


@pytest.fixture
def scene(app, client, login_as, make_infusion, make_protocol, make_patient):
    """A signed-in nurse and one session in each state a form of the page depends on."""
    nurse = login_as("np")
    protocol = make_protocol()
    now = utcnow()
    timeline = {
        "planned": {},
        "checked_in": {"checked_in_at": now - timedelta(minutes=20)},
        "infusing": {"checked_in_at": now - timedelta(minutes=40),
                     "started_at": now - timedelta(minutes=10)},
        "paused": {"checked_in_at": now - timedelta(minutes=40),
                   "started_at": now - timedelta(minutes=10)},
        "recovery": {"checked_in_at": now - timedelta(hours=2),
                     "started_at": now - timedelta(minutes=100),
                     "ended_at": now - timedelta(minutes=60)},
    }
    sessions = {}
    for n, (status, times) in enumerate(timeline.items()):
        sessions[status] = make_infusion(
            patient=make_patient(), protocol=protocol, clinician=nurse, status=status,
            room=f"Room {n + 1}", **times)
    return sessions


PAGES = {  # which page's forms, in which session state
    "planned": "/infusions/{planned}",
    "checked_in": "/infusions/{checked_in}",
    "infusing": "/infusions/{infusing}",
    "paused": "/infusions/{paused}",
    "discharge": "/infusions/{recovery}/discharge",
    "register": "/patients/new",
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_no_form_answers_500_writes_partly_or_reflects_markup(client, scene, page):
    url = PAGES[page].format(**{status: s.id for status, s in scene.items()})
    html = client.get(url).get_data(as_text=True)
    forms = forms_on(html, url)
    assert forms, f"no forms found on {url}"
    for action, fields in forms:
        fuzz_form(client, url, action, fields)
    print(f"\nfuzz requests: {REQUESTS['count']} ({page}: {len(forms)} forms)")


# --- the forms only a physician or the administrator reaches -------------------------------


@pytest.fixture
def physician_scene(app, client, login_as, make_staff, make_infusion, make_protocol,
                    make_patient):
    """A signed-in physician supervising a session in each state their forms need: infusing
    (rate above the limit with an override, stop), discharged (sign, ledger explanation),
    signed (addendum); a protocol to edit; an open ledger discrepancy to resolve; a reading
    to review (the review and sign forms are on the session page)."""
    from datetime import date

    from infusion_tracker.ledger import services as ledger
    from tests.conftest import PASSWORD, run_session

    doctor = login_as("physician")
    nurse = make_staff("np")
    protocol = make_protocol()

    def session(until, room):
        return run_session(make_infusion(patient=make_patient(), protocol=protocol,
                                         clinician=nurse, physician=doctor, room=room),
                           until, started_minutes_ago=10 if until == "infusing" else 200)

    infusing = session("infusing", "Room 1")
    discharged = session("discharged", "Room 2")
    signed = session("signed", "Room 3")
    vials = ledger.receive_vials(
        actor=nurse, quantity=2, drug="ketamine", strength_mg_per_ml=50.0, volume_ml=10.0,
        lot="LOT42", expiry=date.today() + timedelta(days=365), supplier="Hikma",
        invoice_number="DEA-222-0001")
    db.session.commit()
    ledger.record_count(nurse, {vials[0].id: 10.0, vials[1].id: 9.5}, doctor.username,
                        PASSWORD)
    db.session.commit()
    return {"infusing": infusing, "discharged": discharged, "signed": signed,
            "protocol": protocol, "patient": infusing.patient,
            "discrepancy": ledger.open_discrepancies()[0]}


PHYSICIAN_PAGES = {
    "infusing": "/infusions/{infusing}",
    "to sign": "/infusions/{discharged}",
    "signed": "/infusions/{signed}",
    "protocol edit": "/protocols/{protocol}/edit",
    "protocol new": "/protocols/new",
    "discrepancy": "/ledger/discrepancies/{discrepancy}/resolve",
    "patient edit": "/patients/{patient}/edit",
    "plan": "/patients/{patient}/infusions/new",
}
# The forms the nurse's pages above do not already fuzz.
PHYSICIAN_ACTIONS = re.compile(
    r"/(sign|addenda|rate|explain|review|edit|new|resolve)$|/protocols/|/infusions/new$")


def test_physician_forms_never_500_write_partly_or_reflect_markup(client, physician_scene):
    """One scene for every page (building it is the slow part)."""
    ids = {name: thing.id for name, thing in physician_scene.items()}
    fuzzed = set()
    for page, path in PHYSICIAN_PAGES.items():
        url = path.format(**ids)
        forms = [(action, fields) for action, fields in
                 forms_on(client.get(url).get_data(as_text=True), url)
                 if PHYSICIAN_ACTIONS.search(action) and action not in fuzzed
                 and not re.fullmatch(r"/infusions/\d+/edit", action)]  # the nurse's
        assert forms or page == "infusing", f"no physician's forms found on {url}"
        for action, fields in forms:
            fuzzed.add(action)
            fuzz_form(client, url, action, fields, FEWER)
        print(f"\nfuzz requests: {REQUESTS['count']} ({page}: {len(forms)} forms)")
    assert any(action.endswith("/sign") for action in fuzzed)
    assert any(action.endswith("/addenda") for action in fuzzed)
    assert any(action.endswith("/rate") for action in fuzzed)


@pytest.fixture
def admin_scene(app, client, login_as, make_staff):
    login_as("admin")
    return {"staff": make_staff("np")}


ADMIN_PAGES = {
    "staff new": "/admin/staff/new",
    "staff edit": "/admin/staff/{staff}",
    "device new": "/admin/devices/new",
    "audit": "/admin/audit",
}


def test_admin_forms_never_500_write_partly_or_reflect_markup(client, admin_scene):
    for page, path in ADMIN_PAGES.items():
        url = path.format(**{name: s.id for name, s in admin_scene.items()})
        forms = forms_on(client.get(url).get_data(as_text=True), url)
        assert forms, f"no forms found on {url}"
        for action, fields in forms:
            fuzz_form(client, url, action, fields, FEWER)
        print(f"\nfuzz requests: {REQUESTS['count']} ({page}: {len(forms)} forms)")
