"""Bad input never answers 500 (issue 9, defect 3): ids beyond 64 bits in any URL, page
numbers beyond 64 bits or negative, dates in the year 9999, NUL and other control characters
(PostgreSQL cannot store a NUL in text). Run on SQLite and on PostgreSQL."""

import re
from datetime import timedelta

import pytest

from infusion_tracker.timeutil import to_clinic, utcnow
from tests.conftest import PASSWORD, login

HUGE = "99999999999999999999"  # beyond 2**64
JUST_OVER = str(2**31)  # beyond the INTEGER id columns (32-bit on PostgreSQL)


def int_routes(app):
    """(rule, methods) for every route with an <int:...> part."""
    return [
        (rule, sorted(rule.methods - {"HEAD", "OPTIONS"}))
        for rule in app.url_map.iter_rules()
        if "<int:" in rule.rule
    ]


def with_id(rule, value: str) -> str:
    return re.sub(r"<int:[^>]+>", value, rule.rule)


@pytest.mark.parametrize("value", [HUGE, str(2**63), JUST_OVER])
def test_every_int_route_answers_404_for_an_id_out_of_range(app, client, login_as, value):
    login_as("physician")
    routes = int_routes(app)
    assert len(routes) > 30
    answers = {}
    for rule, methods in routes:
        for method in methods:
            response = client.open(with_id(rule, value), method=method, data={})
            answers[f"{method} {rule.rule}"] = response.status_code
    assert {code for code in answers.values()} == {404}, answers


def test_the_largest_id_a_column_holds_is_still_a_plain_404(client, login_as):
    login_as("physician")
    assert client.get(f"/patients/{2**31 - 1}").status_code == 404


@pytest.mark.parametrize("page", [HUGE, "-3", "0", "x", JUST_OVER])
@pytest.mark.parametrize(
    ("role", "path"),
    [("np", "/patients/?q=Example"), ("physician", "/review/?"), ("admin", "/admin/audit?")],
)
def test_page_numbers_out_of_range_show_a_page(client, login_as, make_patient, role, path, page):
    make_patient()
    login_as(role)
    response = client.get(f"{path}&page={page}")
    assert response.status_code == 200


def test_an_audit_filter_dated_9999_is_refused_with_its_field(client, login_as):
    login_as("admin")
    response = client.get("/admin/audit?date_from=2020-01-01&date_to=9999-12-31")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "To: enter a date between 1900 and 2199." in html


def test_a_reading_dated_9999_is_refused_with_its_field(client, login_as, make_infusion):
    nurse = login_as("np")
    now = utcnow()
    infusing = make_infusion(
        status="infusing",
        clinician=nurse,
        checked_in_at=now - timedelta(minutes=40),
        started_at=now - timedelta(minutes=10),
    )
    response = client.post(
        f"/infusions/{infusing.id}/readings",
        data={
            "reading-taken_at": "9999-12-31T23:59",
            "reading-phase": "infusion",
            "reading-heart_rate": "70",
        },
    )
    assert response.status_code == 422
    assert "time taken cannot be in the future." in response.get_data(as_text=True)
    response = client.post(
        f"/infusions/{infusing.id}/adverse-events",
        data={
            "ae-onset_at": "9999-12-31T23:59",
            "ae-event_type": "hypertension",
            "ae-severity": "moderate",
            "ae-infusion_action": "none",
        },
    )
    assert response.status_code == 422
    assert "cannot be in the future." in response.get_data(as_text=True)


def test_a_plan_dated_9999_is_refused_with_its_field(client, login_as, make_patient, make_protocol):
    login_as("np")
    patient, protocol = make_patient(), make_protocol()
    response = client.post(
        f"/patients/{patient.id}/infusions/new",
        data={"protocol_id": protocol.id, "scheduled_for": "9999-12-31T23:59", "weight": "70"},
    )
    assert response.status_code == 422
    assert "Scheduled for must be between" in response.get_data(as_text=True)


def test_an_assessment_dated_9999_is_refused(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "phq9", "score": "5", "taken_at": "9999-12-31T23:59"},
    )
    assert response.status_code == 422
    assert "The time taken cannot be in the future." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/ledger/reports/stock?on=9999-12-31", None),  # ignored: today's stock
        ("/ledger/reports/stock?on=9999-12-31&format=csv", None),
        ("/ledger/reports/period?start=9999-12-30&end=9999-12-31", "To: enter a date"),
        ("/ledger/reports/period?start=0001-01-01&end=0001-01-02&format=csv", None),
        ("/quality/?start=2020-01-01&end=9999-12-31", "To: enter a date"),
        ("/quality/summary.csv?start=0001-01-01&end=9999-12-31", None),
    ],
)
def test_report_dates_out_of_range_are_not_a_500(client, login_as, path, message):
    login_as("physician")
    response = client.get(path)
    assert response.status_code == 200
    if message:
        assert message in response.get_data(as_text=True)


def test_a_huge_correction_id_in_an_assessment_form_is_not_a_500(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    path = f"/patients/{patient.id}/assessments/new"
    assert client.get(f"{path}?corrects={HUGE}&infusion_id={HUGE}").status_code == 200
    response = client.post(path, data={"instrument": "phq9", "score": "5", "corrects_id": HUGE})
    assert response.status_code < 500


def test_a_nul_in_the_login_form_is_refused_naming_the_field(client, make_staff):
    make_staff("np", username="nurse")
    response = client.post("/login", data={"username": "nur\x00se", "password": PASSWORD})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Username contains a control character" in html
    # The refusal is not a sign-in: the real one still works afterwards.
    assert login(client, "nurse").status_code == 302


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_control_characters_in_query_or_form_are_refused(client, login_as, make_patient, char):
    login_as("np")
    patient = make_patient()
    response = client.get("/patients/", query_string={"q": f"Ex{char}ample"})
    assert response.status_code == 400
    assert "Q contains a control character" in response.get_data(as_text=True)
    response = client.post(
        f"/patients/{patient.id}/edit", data={"allergies": f"None{char}", "version": "1"}
    )
    assert response.status_code == 400
    assert "Allergies contains a control character" in response.get_data(as_text=True)


def test_tabs_and_line_breaks_are_still_accepted(client, login_as):
    login_as("np")
    response = client.get("/patients/", query_string={"q": "Ex\tample\r\n"})
    assert response.status_code == 200


def test_huge_numbers_in_forms_are_refused_not_500(client, login_as, make_patient, make_infusion):
    nurse = login_as("np")
    now = utcnow()
    infusing = make_infusion(
        status="infusing",
        clinician=nurse,
        checked_in_at=now - timedelta(minutes=40),
        started_at=now - timedelta(minutes=10),
    )
    wall = to_clinic(now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        f"/infusions/{infusing.id}/adverse-events",
        data={
            "ae-onset_at": wall,
            "ae-event_type": "nausea",
            "ae-severity": "mild",
            "ae-infusion_action": "none",
            "ae-reading_id": HUGE,
        },
    )
    assert response.status_code in (200, 409, 422)
    assert "not part of this session" in response.get_data(as_text=True)
    patient = make_patient()
    for path, data in [
        (f"/patients/{patient.id}/assessments/new", {"instrument": "phq9", "score": HUGE}),
        (f"/patients/{patient.id}/edit", {"version": HUGE, "first_name": "A"}),
        (
            f"/infusions/{infusing.id}/readings",
            {"reading-taken_at": wall, "reading-phase": "infusion", "reading-systolic": HUGE},
        ),
        (f"/infusions/{infusing.id}/edit", {"version": HUGE}),
    ]:
        assert client.post(path, data=data).status_code < 500, path
