"""Monitor intake end to end: device registration, POST /api/hl7 and its ACKs, proposed
readings accepted (through the reading service) or dismissed, MLLP on a real socket, the
simulator, the CLI."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.devices import mllp, services, simulator
from infusion_tracker.extensions import db
from infusion_tracker.models import Device, DeviceMessage, ProposedReading, Reading
from infusion_tracker.timeutil import utcnow
from tests.conftest import audit_rows

VITALS = {
    "systolic": 128,
    "diastolic": 82,
    "heart_rate": 78,
    "resp_rate": 15,
    "spo2": 97,
    "temperature_c": 36.8,
}


@pytest.fixture
def device(app):
    device, token = services.register_device("Room 1 monitor", "Room 1", None, "00A0370000000001")
    db.session.commit()
    device.token = token  # for the test only; the database has the hash
    return device


@pytest.fixture
def in_progress(make_infusion):
    now = utcnow()
    return make_infusion(
        status="infusing",
        room="Room 1",
        checked_in_at=now - timedelta(minutes=30),
        started_at=now - timedelta(minutes=20),
    )


def oru(control_id="M1", minutes_ago=1, sender="00A0370000000001^00A0370000000001^EUI-64", **v):
    return simulator.message(
        sender, control_id, utcnow() - timedelta(minutes=minutes_ago), {**VITALS, **v}
    )


def post(client, body, token, content_type="application/hl7-v2"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/hl7", data=body, headers=headers, content_type=content_type)


def msa(response_or_text) -> list[str]:
    text = getattr(response_or_text, "get_data", lambda **_: response_or_text)(as_text=True)
    line = next(line for line in text.split("\r") if line.startswith("MSA"))
    return line.split("|")


# --- Devices -------------------------------------------------------------------------------


def test_token_is_stored_hashed_and_works_until_revoked(client, device, in_progress):
    stored = db.session.get(Device, device.id)
    assert device.token not in stored.token_hash and len(stored.token_hash) == 64
    assert post(client, oru("A"), device.token).status_code == 200
    services.revoke_device(stored, None)
    db.session.commit()
    response = post(client, oru("B"), device.token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert msa(response)[1:3] == ["AR", "B"]
    actions = [row.action for row in audit_rows() if row.action.startswith("device.")]
    assert actions == ["device.registered", "device.revoked"]


def test_cli_add_device_prints_the_token_once(runner, client, in_progress):
    result = runner.invoke(
        args=["add-device", "Bed 1 monitor", "--room", "Room 1", "--identifier", "EUI1"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    device = db.session.scalar(sa.select(Device))
    assert device.identifier == "EUI1" and device.token_hash == services.hash_token(token)
    assert audit_rows("device.registered")[0].details["via"] == "cli"
    assert post(client, oru(), token).status_code == 200
    refused = runner.invoke(args=["add-device", "Other", "--room", "Room 9"])
    assert refused.exit_code != 0 and "Room: choose one of" in refused.output
    assert runner.invoke(args=["revoke-device", str(device.id)]).exit_code == 0
    assert post(client, oru("M2"), token).status_code == 401


def test_admin_registers_sees_the_token_once_and_revokes(client, login_as, in_progress):
    login_as("admin")
    response = client.post(
        "/admin/devices/new", data={"name": "Bay monitor", "room": "Room 1", "identifier": ""}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    device = db.session.scalar(sa.select(Device))
    shown = [code.split("<")[0] for code in html.split("<code>")[1:]]
    (token,) = [t for t in shown if services.hash_token(t) == device.token_hash]
    assert token not in client.get(f"/admin/devices/{device.id}").get_data(as_text=True)
    assert "Bay monitor" in client.get("/admin/devices/").get_data(as_text=True)
    refused = client.post("/admin/devices/new", data={"name": "", "room": "Nowhere"})
    assert refused.status_code == 422
    assert "Enter the device" in refused.get_data(as_text=True)
    assert client.post(f"/admin/devices/{device.id}/revoke").status_code == 302
    assert post(client, oru(), token).status_code == 401
    assert client.post(f"/admin/devices/{device.id}/revoke").status_code == 409


# --- The intake ----------------------------------------------------------------------------


def test_values_become_a_proposed_reading_not_a_reading(client, device, in_progress):
    response = post(client, oru("M1"), device.token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/hl7-v2"
    assert msa(response)[1:3] == ["AA", "M1"]
    (proposed,) = db.session.scalars(sa.select(ProposedReading)).all()
    assert proposed.infusion_id == in_progress.id and proposed.phase == "infusion"
    assert proposed.values() == VITALS
    assert db.session.scalar(sa.select(sa.func.count(Reading.id))) == 0
    message = db.session.scalar(sa.select(DeviceMessage))
    assert message.outcome == "AA" and message.raw.startswith("MSH|") and message.via == "http"


def test_unknown_codes_are_kept_and_reported_in_the_ack(client, device, in_progress):
    body = oru().rstrip("\r") + (
        "\rOBX|7|NM|188736^MDC_MASS_BODY_ACTUAL^MDC|1.1.5.1|70|263875^MDC_DIM_X_G^MDC|||||F\r"
    )
    response = post(client, body, device.token, content_type="text/plain")
    assert msa(response)[1] == "AA"
    assert "188736" in response.get_data(as_text=True).split("\rERR")[1]
    proposed = db.session.scalar(sa.select(ProposedReading))
    assert proposed.unknown == [
        "OBX|7|NM|188736^MDC_MASS_BODY_ACTUAL^MDC|1.1.5.1|70|263875^MDC_DIM_X_G^MDC|||||F"
    ]


def test_no_session_in_the_room_is_ae_and_kept_for_audit(client, device):
    response = post(client, oru("M9"), device.token)
    assert response.status_code == 422
    assert msa(response)[1:3] == ["AE", "M9"]
    assert "No session is in progress in Room 1" in msa(response)[3]
    assert "ERR|" in response.get_data(as_text=True)
    message = db.session.scalar(sa.select(DeviceMessage))
    assert message.outcome == "AE" and message.infusion_id is None
    assert db.session.scalar(sa.select(sa.func.count(ProposedReading.id))) == 0


def test_wrong_unit_is_ae_and_nothing_is_proposed(client, device, in_progress):
    body = oru().replace("268192^MDC_DIM_DEGC", "266560^MDC_DIM_FAHR")
    response = post(client, body, device.token)
    assert response.status_code == 422 and msa(response)[1] == "AE"
    assert "MDC_DIM_FAHR" in msa(response)[3]
    assert db.session.scalar(sa.select(sa.func.count(ProposedReading.id))) == 0


@pytest.mark.parametrize(
    "body", ["", "not hl7 at all", "MSH|", "MSH|^~\\&|\x00\x01|||||ORU^R01|1|P|2.6\rOBX|1|NM|"]
)
def test_malformed_is_ar_logged_with_the_raw_message(client, device, in_progress, body, caplog):
    response = post(client, body, device.token)
    assert response.status_code == 400
    assert msa(response)[1] == "AR"
    message = db.session.scalar(sa.select(DeviceMessage))
    # A NUL byte is kept spelled out: no database text column can hold one.
    assert message.outcome == "AR" and message.raw == body.replace("\x00", "\\x00")
    assert message.reason
    assert any("malformed" in record.message for record in caplog.records)


def test_no_or_bad_token_is_401_and_nothing_is_kept(client, device, in_progress):
    assert post(client, oru(), None).status_code == 401
    assert post(client, oru(), "wrong").status_code == 401
    response = client.post(
        "/api/hl7", data=oru(), headers={"Authorization": f"Basic {device.token}"}
    )
    assert response.status_code == 401
    assert db.session.scalar(sa.select(sa.func.count(DeviceMessage.id))) == 0


def test_content_type_size_and_rate_limits(app, client, device, in_progress):
    assert post(client, oru(), device.token, content_type="application/json").status_code == 415
    app.config["HL7_MAX_BYTES"] = 500
    response = post(client, oru(), device.token)
    assert response.status_code == 413 and msa(response)[1] == "AR"
    app.config["HL7_MAX_BYTES"] = 64 * 1024
    app.config["HL7_MESSAGES_PER_MINUTE"] = 3
    codes = [post(client, oru(f"R{n}"), device.token).status_code for n in range(4)]
    assert codes == [200, 200, 200, 429]
    assert db.session.scalar(sa.select(sa.func.count(DeviceMessage.id))) == 3


def test_the_api_needs_no_login_or_csrf_but_pages_still_do(app, client, device, in_progress):
    app.config["WTF_CSRF_ENABLED"] = True
    assert post(client, oru(), device.token).status_code == 200
    assert client.get("/admin/devices/").status_code == 302


# --- Accept and dismiss --------------------------------------------------------------------


def proposed_after(client, device, **values) -> ProposedReading:
    response = post(client, oru(**values), device.token)
    assert response.status_code == 200, response.get_data(as_text=True)
    newest = sa.select(ProposedReading).order_by(ProposedReading.id.desc()).limit(1)
    return db.session.scalar(newest)


def test_one_key_accept_charts_through_the_reading_service(client, login_as, device, in_progress):
    nurse = login_as("np")
    proposed = proposed_after(client, device, systolic=185)  # above the critical limit
    page = client.get(f"/proposed-readings/{proposed.id}/accept")
    assert page.status_code == 200
    response = client.post(f"/proposed-readings/{proposed.id}/accept")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/infusions/{in_progress.id}#proposed-readings")
    reading = db.session.scalar(sa.select(Reading))
    assert reading.systolic == 185 and reading.heart_rate == 78
    assert reading.temperature_c == 36.8 and reading.recorded_by_id == nurse.id
    assert reading.taken_at == proposed.observed_at
    assert reading.severity == "critical"  # the same tiers as a typed reading
    db.session.refresh(proposed)
    assert proposed.status == "accepted" and proposed.reading_id == reading.id
    assert proposed.decided_by_id == nurse.id
    (row,) = audit_rows("reading.accepted_from_device")
    assert row.details["device"] == "Room 1 monitor" and row.details["reading_id"] == reading.id
    assert audit_rows("reading.recorded")
    # Accepting twice is refused.
    assert client.post(f"/proposed-readings/{proposed.id}/accept").status_code == 409


def test_accept_with_edits_records_what_changed(client, login_as, device, in_progress):
    login_as("np")
    proposed = proposed_after(client, device)
    form = {
        "edited": "1",
        "systolic": "130",
        "diastolic": "82",
        "heart_rate": "78",
        "resp_rate": "",  # the monitor's value was artifact
        "spo2": "97",
        "temperature_c": "36.8",
        "phase": "infusion",
        "note": "Cuff re-sited",
    }
    assert client.post(f"/proposed-readings/{proposed.id}/accept", data=form).status_code == 302
    reading = db.session.scalar(sa.select(Reading))
    assert (reading.systolic, reading.resp_rate, reading.note) == (130, None, "Cuff re-sited")
    edited = audit_rows("reading.accepted_from_device")[0].details["edited"]
    assert edited == {"systolic": [128.0, "130"], "resp_rate": [15.0, ""]}


def test_an_impossible_value_is_refused_naming_the_field(client, login_as, device, in_progress):
    login_as("np")
    proposed = proposed_after(client, device, spo2=97.5)
    response = client.post(f"/proposed-readings/{proposed.id}/accept")
    assert response.status_code == 422
    assert "SpO2 must be a whole number" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Reading.id))) == 0
    db.session.refresh(proposed)
    assert proposed.status == "proposed"


def test_dismiss_is_audited_and_charts_nothing(client, login_as, device, in_progress):
    login_as("pa")
    proposed = proposed_after(client, device)
    response = client.post(f"/proposed-readings/{proposed.id}/dismiss", data={"reason": "moving"})
    assert response.status_code == 302
    db.session.refresh(proposed)
    assert proposed.status == "dismissed"
    assert db.session.scalar(sa.select(sa.func.count(Reading.id))) == 0
    (row,) = audit_rows("reading.dismissed_from_device")
    assert row.details["reason"] == "moving" and row.details["values"]["systolic"] == 128


def test_panel_lists_pending_values_with_accept_first(client, device, in_progress, login_as):
    login_as("np")
    first = proposed_after(client, device)
    proposed_after(client, device, systolic=140)
    html = client.get(f"/infusions/{in_progress.id}").get_data(as_text=True)
    panel = html.split('id="proposed-readings"')[1].split("</section>")[0]
    assert re.findall(r'<li class="proposed-item" id="proposed-(\d+)"', panel) == [
        str(first.id), str(first.id + 1)
    ]
    item = panel.split(f'id="proposed-{first.id}"')[1]
    # The first focusable control of each item is its Accept button.
    first_control = min(
        (item.find(tag), tag) for tag in ("<button", "<a ", "<input type=\"text\"") if tag in item
    )
    assert first_control[1] == "<button" and item[first_control[0]:].split(">")[1].startswith(
        "Accept"
    )
    assert "BP 128/82" in panel and "BP 140/82" in panel


# --- MLLP and the simulator ----------------------------------------------------------------


@pytest.fixture
def listener(app):
    server = mllp.start_in_thread(app)
    yield server
    server.shutdown()
    server.server_close()


def test_mllp_answers_each_framed_message_on_a_real_socket(listener, device, in_progress):
    host, port = listener.server_address
    acks = mllp.send(host, port, [oru("L1"), "garbage", oru("L2", sender="UNKNOWN^X^EUI-64")])
    assert [msa(ack)[1:3] for ack in acks] == [["AA", "L1"], ["AR", ""], ["AR", "L2"]]
    assert "No active device" in msa(acks[2])[3]
    db.session.expire_all()
    message = db.session.scalar(sa.select(DeviceMessage))
    assert message.via == "mllp" and message.control_id == "L1"
    assert db.session.scalar(sa.select(sa.func.count(ProposedReading.id))) == 1


def test_mllp_refuses_an_oversized_frame(app, listener, device, in_progress):
    app.config["HL7_MAX_BYTES"] = 200
    host, port = listener.server_address
    (ack,) = mllp.send(host, port, [oru("BIG")])
    assert msa(ack)[1] == "AR" and "larger than 200 bytes" in msa(ack)[3]


def test_simulator_over_mllp_sends_a_whole_infusion(runner, listener, device, in_progress):
    host, port = listener.server_address
    result = runner.invoke(
        args=["simulate-monitor", "--room", "Room 1", "--port", str(port), "--speed", "100000"]
    )
    assert result.exit_code == 0, result.output
    assert "Done: 9 message(s) accepted." in result.output
    db.session.expire_all()
    proposed = db.session.scalars(sa.select(ProposedReading)).all()
    assert len(proposed) == 9
    systolic = [p.systolic for p in proposed]
    assert max(systolic) > systolic[0] + 10  # ketamine's rise in blood pressure


def test_simulator_over_http(runner, live_server, device, in_progress):
    result = runner.invoke(
        args=[
            "simulate-monitor", "--room", "Room 1", "--via", "http", "--speed", "100000",
            "--url", f"{live_server}/api/hl7", "--token", device.token,
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Done: 9 message(s) accepted." in result.output
