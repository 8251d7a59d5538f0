"""Idle sign-out on the server (SPEC §8): an expired form post comes back to its page after
signing in, /account/keep-alive refreshes the idle clock, and every signed-in page carries
what static/js/idle.js needs. The browser side is in test_browser_idle.py."""

import re
import time

import pytest

from infusion_tracker.security import SEEN_AT_STEP_SECONDS
from infusion_tracker.timeutil import to_clinic, utcnow
from tests.conftest import PASSWORD, csrf_token_from, login

KEEP_ALIVE = "/account/keep-alive"
IDLE = 15 * 60


def age_session(client, **seconds_ago):
    now = time.time()
    with client.session_transaction() as session:
        for key, ago in seconds_ago.items():
            session[key] = now - ago


def seen_at(client) -> float:
    with client.session_transaction() as session:
        return session["seen_at"]


def reading(systolic=128):
    taken = to_clinic(utcnow()).strftime("%Y-%m-%dT%H:%M")
    return {
        "reading-taken_at": taken,
        "reading-phase": "infusion",
        "reading-systolic": str(systolic),
        "reading-diastolic": "80",
        "reading-o2_room_air": "y",
    }


@pytest.fixture
def charted_baseline():
    return False  # these tests count the session's readings from none


def body_attributes(html: str) -> dict:
    tag = re.search(r"<body[^>]*>", html).group(0)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag))


# --- An expired post comes back to the page the form was on ---------------------------------


@pytest.mark.parametrize(
    "referrer",
    [
        "http://localhost/infusions/{id}",  # the session page the form was on
        None,  # no Referer (stripped by a proxy or a setting): the reading's parent page
        "http://localhost/infusions/{id}/readings",  # a refused form, shown at the POST address
        "http://elsewhere.example/infusions/{id}",  # another site's address is never used
    ],
)
def test_an_expired_reading_post_is_sent_to_sign_in_with_the_session_page_as_next(
    client, nurse, infusing, referrer
):
    age_session(client, seen_at=IDLE + 5)
    headers = {"Referer": referrer.format(id=infusing.id)} if referrer else {}
    response = client.post(f"/infusions/{infusing.id}/readings", data=reading(), headers=headers)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=/infusions/{infusing.id}"
    assert infusing.readings == []  # nothing was charted by a signed-out browser

    # Signing in there lands back on the session page, which answers GET.
    back = client.post(
        response.headers["Location"], data={"username": nurse.username, "password": PASSWORD}
    )
    assert back.headers["Location"] == f"/infusions/{infusing.id}"
    assert client.get(back.headers["Location"]).status_code == 200


def test_the_referer_keeps_its_query(client, nurse, infusing):
    age_session(client, seen_at=IDLE + 5)
    response = client.post(
        f"/infusions/{infusing.id}/readings",
        data=reading(),
        headers={"Referer": f"http://localhost/infusions/{infusing.id}?ae_reading=3"},
    )
    assert response.headers["Location"] == f"/login?next=/infusions/{infusing.id}?ae_reading%3D3"


def test_a_post_with_no_page_to_return_to_goes_to_plain_sign_in(client, make_staff):
    make_staff("np")
    response = client.post("/logout", headers={"Referer": "http://localhost/login"})
    assert response.headers["Location"] == "/login"


def test_the_sign_in_page_opened_at_the_timeout_shows_the_form_and_ends_the_session(
    client, nurse, infusing
):
    """idle.js opens /login?next=… itself: the expired session must not pass for a live one."""
    age_session(client, seen_at=IDLE + 5)
    page = client.get(f"/login?next=/infusions/{infusing.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "You were signed out after 15 minutes without activity." in html
    assert 'name="password"' in html
    assert client.get(f"/infusions/{infusing.id}").status_code == 302  # and it stays ended


def test_the_sign_in_page_while_still_signed_in_returns_to_next(client, nurse, infusing):
    # A page whose script ran ahead of the server's clock goes straight back.
    response = client.get(f"/login?next=/infusions/{infusing.id}")
    assert response.headers["Location"] == f"/infusions/{infusing.id}"
    assert client.get("/login?next=//evil.example/").headers["Location"] == "/"


def test_a_public_page_is_not_activity(client, nurse):
    age_session(client, seen_at=60)
    before = seen_at(client)
    client.get("/login")
    assert seen_at(client) == before


def test_activity_is_noted_at_most_every_few_seconds_and_only_then_a_new_cookie(client, nurse):
    age_session(client, seen_at=60)
    first = client.get("/account/password")
    assert "session=" in first.headers.get("Set-Cookie", "")
    assert time.time() - seen_at(client) < 5
    again = client.get("/account/password")  # within the step: the same cookie serves
    assert again.status_code == 200 and "Set-Cookie" not in again.headers
    age_session(client, seen_at=SEEN_AT_STEP_SECONDS + 1)
    later = client.get("/account/password")
    assert "session=" in later.headers.get("Set-Cookie", "")
    assert time.time() - seen_at(client) < 5


# --- Keep-alive -------------------------------------------------------------------------------


def test_keep_alive_refreshes_the_idle_clock(client, nurse):
    age_session(client, seen_at=IDLE - 30)
    response = client.post(KEEP_ALIVE)
    assert response.status_code == 204 and response.data == b""
    assert time.time() - seen_at(client) < 5
    age_session(client, seen_at=IDLE - 30)  # another 14½ minutes: still within the limit
    assert client.get("/account/password").status_code == 200


def test_keep_alive_after_the_timeout_signs_out_like_any_request(client, nurse):
    age_session(client, seen_at=IDLE + 5)
    response = client.post(KEEP_ALIVE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.post(KEEP_ALIVE).headers["Location"].startswith("/login")  # no way back


def test_keep_alive_is_refused_when_anonymous(client):
    response = client.post(KEEP_ALIVE)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get(KEEP_ALIVE).status_code == 405


def test_keep_alive_works_during_a_forced_password_change(client, make_staff):
    # The change-password page must not be signed out while the new password is typed.
    staff = make_staff("np", must_change_password=True)
    login(client, staff.username)
    assert client.post(KEEP_ALIVE).status_code == 204
    assert client.get("/").headers["Location"] == "/account/password"


class TestKeepAliveCsrf:
    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    def test_needs_the_token(self, client, make_staff):
        make_staff("np", username="jroe")
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        login_data = {"username": "jroe", "password": PASSWORD, "csrf_token": token}
        assert client.post("/login", data=login_data).status_code == 302
        age_session(client, seen_at=IDLE - 30)
        before = seen_at(client)
        assert client.post(KEEP_ALIVE).status_code == 400
        assert seen_at(client) == before  # a refused keep-alive keeps nobody signed in
        page = client.get("/account/password").get_data(as_text=True)
        header = {"X-CSRFToken": body_attributes(page)["csrf-token"]}
        assert client.post(KEEP_ALIVE, headers=header).status_code == 204


# --- What the page gives idle.js --------------------------------------------------------------


def test_a_signed_in_page_carries_the_idle_settings(client, nurse, infusing):
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    attributes = body_attributes(html)
    assert attributes["idle-timeout"] == "900"
    assert attributes["idle-warning"] == "60"
    assert attributes["idle-return"] == f"/infusions/{infusing.id}"
    assert attributes["keep-alive-url"] == KEEP_ALIVE
    assert attributes["staff"] == str(nurse.id)
    assert "js/idle.js" in html
    assert f'data-keep-draft="reading-{infusing.id}"' in html


def test_a_refused_reading_page_returns_to_the_session_page(client, nurse, infusing):
    """The refused form is shown at the POST's address, which answers GET with 405."""
    response = client.post(
        f"/infusions/{infusing.id}/readings",
        data=reading(systolic=400),
        headers={"Referer": f"http://localhost/infusions/{infusing.id}"},
    )
    assert response.status_code == 422
    assert body_attributes(response.get_data(as_text=True))["idle-return"] == (
        f"/infusions/{infusing.id}"
    )
    assert infusing.readings == []


def test_the_sign_in_page_carries_no_idle_clock(client, make_staff):
    make_staff("np")
    assert body_attributes(client.get("/login").get_data(as_text=True)) == {}


class TestShortTimeout:
    @pytest.fixture
    def app_config(self):
        return {"IDLE_TIMEOUT_MINUTES": 1}

    def test_the_warning_comes_at_half_a_short_timeout(self, client, nurse):
        attributes = body_attributes(client.get("/account/password").get_data(as_text=True))
        assert (attributes["idle-timeout"], attributes["idle-warning"]) == ("60", "30")

    def test_the_message_says_one_minute(self, client, nurse):
        age_session(client, seen_at=65)
        html = client.get("/login").get_data(as_text=True)
        assert "signed out after 1 minute without activity" in html
