"""The template helpers that save a page's drawing work (issue 8): a table's links built from one
url_for, status tags drawn once, each template's globals a plain dict. Each must write what the
slower way wrote."""

from flask import url_for
from markupsafe import Markup

from infusion_tracker.templating import id_url, status_tag


def test_a_tables_links_are_the_addresses_url_for_gives(app):
    with app.test_request_context("/", base_url="http://clinic.example/tracker"):
        session_link = id_url("infusions.detail", "infusion_id")
        correct_link = id_url("patients.new_assessment", "corrects", patient_id=7)
        for row_id in (1, 42, 9_080_706_050_403, 10**15):
            assert session_link(row_id) == url_for("infusions.detail", infusion_id=row_id)
            assert correct_link(row_id) == url_for(
                "patients.new_assessment", patient_id=7, corrects=row_id
            )
        assert session_link(5) == "/tracker/infusions/5"


def test_a_link_whose_fixed_part_holds_the_slots_digits_asks_url_for_each_row(app):
    with app.test_request_context("/"):
        slot = 9_080_706_050_403
        odd = id_url("patients.new_assessment", "corrects", patient_id=slot)
        assert odd(3) == url_for("patients.new_assessment", patient_id=slot, corrects=3)
        assert odd(9_080_706_050_403).count("9080706050403") == 2


def test_a_status_tag_of_markup_is_not_the_tag_of_the_same_letters_as_text(app):
    with app.test_request_context("/"):
        as_text = status_tag("<b>Held</b>", "warning")
        as_markup = status_tag(Markup("<b>Held</b>"), "warning")
        assert as_text == '<span class="tag tag--warning">&lt;b&gt;Held&lt;/b&gt;</span>'
        assert as_markup == '<span class="tag tag--warning"><b>Held</b></span>'
        assert status_tag("<b>Held</b>", "warning") == as_text


def test_each_template_sees_every_global_the_app_sets(app):
    """Templates take the environment's globals when they are loaded (templating.Environment):
    Flask's, the extensions' and the app's own are all there by then."""
    with app.test_request_context("/"):
        globals_ = app.jinja_env.get_template("base.html").globals
        assert isinstance(globals_, dict)
        for name in ("url_for", "csrf_token", "id_url", "status_tag", "idle_settings"):
            assert name in globals_, name
        assert "ledger_panel" in globals_  # a blueprint's (app_template_global)
