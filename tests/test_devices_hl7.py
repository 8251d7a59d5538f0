"""HL7 v2 parsing and mapping for the monitor intake, on real-shaped PCD-01 messages of several
vendors (tests/data/hl7) and on variants of them."""

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from infusion_tracker.devices import hl7

DATA = Path(__file__).parent / "data" / "hl7"
ZONE = ZoneInfo("America/New_York")
NOW = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)


def read(name: str) -> str:
    return (DATA / name).read_text()


def observations(raw: str, now: datetime = NOW) -> hl7.Observations:
    return hl7.observations(hl7.read_envelope(raw), ZONE, now)


def test_three_obx_nibp_grouped_by_observation_minute():
    envelope = hl7.read_envelope(read("three_obx_nibp.hl7"))
    assert envelope.control_id == "NK0001"
    assert {"BSM-6000", "00A0370000000001"} <= envelope.identifiers
    found = hl7.observations(envelope, ZONE, NOW)
    assert [group.observed_at for group in found.groups] == [
        datetime(2026, 1, 15, 15, 29, tzinfo=UTC)  # 10:29:30 and 10:29:45 at -05:00
    ]
    assert found.groups[0].values == {
        "systolic": 128,
        "diastolic": 82,
        "mean_arterial": 97,
        "spo2": 97,
        "heart_rate": 78,  # the ECG's, not the oximeter's 79
        "resp_rate": 15,
        "temperature_c": 36.8,
    }
    assert found.unknown == [] and found.skipped == []


def test_compound_nibp_string_values_missing_units_and_unknown_code():
    found = observations(read("compound_nibp_strings.hl7"))
    (group,) = found.groups
    # No offset in the timestamps: the clinic's wall clock (EST, UTC-5).
    assert group.observed_at == datetime(2026, 1, 15, 15, 45, tzinfo=UTC)
    # SpO2 and pulse rate without OBX-6 are taken in their only clinical unit.
    assert group.values == {
        "systolic": 131,
        "diastolic": 84,
        "mean_arterial": 99,
        "spo2": 96,
        "heart_rate": 84,
    }
    assert found.unknown == [
        "OBX|4|NM|188736^MDC_MASS_BODY_ACTUAL^MDC|1.1.5.1|70|263875^MDC_DIM_X_G^MDC|||||R"
    ]
    assert group.unknown == found.unknown
    assert found.skipped and "status X" in found.skipped[0]


def test_a_wrong_unit_is_refused_not_converted():
    with pytest.raises(hl7.Refused) as refused:
        observations(read("fahrenheit.hl7"))
    assert refused.value.outcome == "AE"
    assert refused.value.control_id == "GE-1"
    assert "266560^MDC_DIM_FAHR^MDC" in refused.value.reason
    assert "not converted" in refused.value.reason


def test_a_pressure_without_unit_is_refused():
    with pytest.raises(hl7.Refused, match="OBX-6 \\(unit\\) is missing") as refused:
        observations(read("nibp_without_unit.hl7"))
    assert refused.value.outcome == "AE"


def test_ucum_units_are_the_same_unit():
    raw = read("nibp_without_unit.hl7").replace("|125||", "|125|mm[Hg]^mm[Hg]^UCUM|")
    assert observations(raw).groups[0].values == {"systolic": 125}


@pytest.mark.parametrize(
    "value, message",
    [("12x", "is not a number"), ("120^80", "is not a number"), ("NaN", "is not a number")],
)
def test_a_value_that_is_not_a_number_is_refused(value, message):
    raw = read("nibp_without_unit.hl7").replace("|125||", f"|{value}|266016^MDC_DIM_MMHG^MDC|")
    with pytest.raises(hl7.Refused, match=message) as refused:
        observations(raw)
    assert refused.value.outcome == "AE"


def test_a_future_observation_is_refused():
    with pytest.raises(hl7.Refused, match="in the future"):
        observations(read("three_obx_nibp.hl7"), now=datetime(2026, 1, 15, 14, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "does not start with an MSH"),
        ("hello", "does not start with an MSH"),
        ("MSH|", "could not be parsed"),
        ("MSH|^~\\&|A||||||ORU^R01|1|P|9.9", "could not be parsed"),
        ("MSH|^~\\&|A||||||ADT^A01|7|P|2.6", r"Only ORU\^R01 is accepted, not ADT\^A01"),
        ("MSH|^~\\&|A||||||ORU^R01||P|2.6", "MSH-10"),
    ],
)
def test_unreadable_messages_are_rejected(raw, reason):
    with pytest.raises(hl7.Refused, match=reason) as refused:
        hl7.read_envelope(raw)
    assert refused.value.outcome == "AR"


def test_line_feeds_are_accepted_as_segment_ends():
    raw = read("three_obx_nibp.hl7").replace("\r", "\n")
    assert observations(raw).groups[0].values["systolic"] == 128


def test_ack_names_the_message_and_escapes_nothing_it_should_not():
    ack = hl7.ack("NK0001", "AE", "Unit 266560^MDC_DIM_FAHR|x refused", receiver="BSM^00A0")
    segments = ack.strip("\r").split("\r")
    assert segments[0].startswith("MSH|^~\\&|INFUSION_TRACKER|CLINIC|BSM^00A0|")
    assert "|ACK^R01^ACK|" in segments[0] and segments[0].endswith("|P|2.6")
    assert segments[1] == "MSA|AE|NK0001|Unit 266560 MDC_DIM_FAHR x refused"
    assert segments[2].startswith("ERR|||207^Application internal error^HL70357|E|")
    # The answer is itself a message hl7apy reads back.
    parsed = hl7.parse_message(ack, validation_level=hl7.TOLERANT)
    assert parsed.msa.msa_1.to_er7() == "AE"


def test_ack_warnings_are_err_segments_of_severity_w():
    ack = hl7.ack("X1", "AA", warnings=["Not charted (unknown code): OBX|4|NM|188736"])
    segments = ack.strip("\r").split("\r")
    assert segments[1] == "MSA|AA|X1"
    assert segments[2].split("|")[4] == "W"
    assert "188736" in segments[2]
