"""The same reading form posted twice stores one reading and says so (issue 9, defect 4):
each blank form carries a random submission key, stored with the reading."""

import re

from infusion_tracker.extensions import db
from infusion_tracker.models import InfusionSession
from infusion_tracker.timeutil import format_time
from tests.conftest import audit_rows, section
from tests.test_readings import NORMAL, charted_baseline, reading_data, readings_of  # noqa: F401


def drawn_key(client, infusion) -> str:
    form = section(client.get(f"/infusions/{infusion.id}").get_data(as_text=True),
                   "chart-reading")
    match = re.search(r'name="reading-submission_key"[^>]*value="([^"]+)"', form) or re.search(
        r'value="([^"]+)"[^>]*name="reading-submission_key"', form)
    assert match, "the reading form carries no submission key"
    return match.group(1)


def test_each_drawn_form_has_its_own_key(client, infusing):
    assert drawn_key(client, infusing) != drawn_key(client, infusing)


def test_a_form_posted_twice_stores_one_reading_and_says_so(client, infusing):
    data = {**reading_data(**NORMAL), "reading-submission_key": drawn_key(client, infusing)}
    url = f"/infusions/{infusing.id}/readings"
    assert client.post(url, data=data).status_code == 302
    version = db.session.get(InfusionSession, infusing.id).version
    again = client.post(url, data=data)
    assert again.status_code == 302
    assert again.headers["Location"].startswith(f"/infusions/{infusing.id}")
    (reading,) = readings_of(infusing)
    assert len(audit_rows("reading.recorded")) == 1
    db.session.expire_all()
    assert db.session.get(InfusionSession, infusing.id).version == version  # nothing changed
    page = client.get(again.headers["Location"]).get_data(as_text=True)
    assert f"This reading was already recorded at {format_time(reading.taken_at)}." in page


def test_a_refused_form_corrected_and_posted_again_stores_once(client, infusing):
    key = drawn_key(client, infusing)
    url = f"/infusions/{infusing.id}/readings"
    refused = client.post(url, data={**reading_data(**{**NORMAL, "spo2": 300}),
                                     "reading-submission_key": key})
    assert refused.status_code == 422
    assert key in refused.get_data(as_text=True)  # the form keeps its key as typed
    assert not readings_of(infusing)
    ok = {**reading_data(**NORMAL), "reading-submission_key": key}
    assert client.post(url, data=ok).status_code == 302
    assert client.post(url, data=ok).status_code == 302
    assert len(readings_of(infusing)) == 1


def test_fresh_forms_chart_separate_readings(client, infusing):
    url = f"/infusions/{infusing.id}/readings"
    for _ in range(2):
        data = {**reading_data(**NORMAL), "reading-submission_key": drawn_key(client, infusing)}
        assert client.post(url, data=data).status_code == 302
    assert len(readings_of(infusing)) == 2


def test_a_key_from_another_session_is_refused(client, infusing, make_infusion, nurse):
    from datetime import timedelta

    from infusion_tracker.timeutil import utcnow

    other = make_infusion(protocol=infusing.protocol, status="infusing", clinician=nurse,
                          room="Room 3",
                          checked_in_at=utcnow() - timedelta(minutes=40),
                          started_at=utcnow() - timedelta(minutes=10))
    key = drawn_key(client, infusing)
    data = {**reading_data(**NORMAL), "reading-submission_key": key}
    assert client.post(f"/infusions/{infusing.id}/readings", data=data).status_code == 302
    refused = client.post(f"/infusions/{other.id}/readings", data=data)
    assert refused.status_code == 422
    assert "reload the page" in refused.get_data(as_text=True)
    assert not readings_of(other)


def test_a_damaged_key_is_named_and_nothing_stored(client, infusing):
    data = {**reading_data(**NORMAL), "reading-submission_key": "k" * 65}
    refused = client.post(f"/infusions/{infusing.id}/readings", data=data)
    assert refused.status_code == 422
    assert "This form was damaged" in refused.get_data(as_text=True)
    assert not readings_of(infusing)


def test_an_adverse_event_form_posted_twice_stores_one_event(client, infusing):
    from infusion_tracker.models import AdverseEvent
    from tests.test_readings import wall

    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    key = re.search(r'name="ae-submission_key"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="ae-submission_key"', html)
    assert key, "the adverse-event form carries no submission key"
    data = {"ae-onset_at": wall(), "ae-event_type": "nausea", "ae-severity": "mild",
            "ae-infusion_action": "none", "ae-submission_key": key.group(1)}
    url = f"/infusions/{infusing.id}/adverse-events"
    assert client.post(url, data=data).status_code == 302
    again = client.post(url, data=data)
    assert again.status_code == 302
    events = db.session.scalars(
        db.select(AdverseEvent).where(AdverseEvent.infusion_id == infusing.id)).all()
    assert len(events) == 1
    page = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "This adverse event was already recorded (Nausea" in page
