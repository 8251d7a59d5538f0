"""HL7 v2 for the monitor intake: IHE PCD-01 ORU^R01 parsed with hl7apy, mapped from ISO/IEEE
11073 (MDC) codes to our reading fields, and the ACK that answers every message.

Units are checked, never converted: a value in a unit other than the one we chart is refused
with the message. Codes we do not map are kept raw and reported back as warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from ..timeutil import utcnow

APPLICATION = "INFUSION_TRACKER"
OUR_FACILITY = "CLINIC"
# hl7apy's own checks are for building messages; devices in the field send what they send.
TOLERANT = VALIDATION_LEVEL.TOLERANT


@dataclass(frozen=True)
class Unit:
    code: str  # MDC code (OBX-6.1)
    name: str  # MDC reference id (OBX-6.2)
    synonyms: frozenset[str]  # the same unit written as UCUM or plain text
    # A missing OBX-6 is taken as this unit only where no other unit is in clinical use.
    implied_when_missing: bool


MMHG = Unit("266016", "MDC_DIM_MMHG", frozenset({"mm[Hg]", "mmHg"}), False)
PERCENT = Unit("262688", "MDC_DIM_PERCENT", frozenset({"%"}), True)
BEATS_PER_MIN = Unit(
    "264864", "MDC_DIM_BEAT_PER_MIN", frozenset({"/min", "{beat}/min", "bpm"}), True
)
RESP_PER_MIN = Unit(
    "264928", "MDC_DIM_RESP_PER_MIN", frozenset({"/min", "{breath}/min", "{resp}/min"}), True
)
DEGREES_C = Unit("268192", "MDC_DIM_DEGC", frozenset({"Cel", "degC", "°C"}), False)


@dataclass(frozen=True)
class Code:
    field: str  # our reading field
    name: str  # MDC reference id
    unit: Unit
    loinc: str  # for exports
    rank: int = 0  # when two codes fill one field in one group, the lower rank wins


CODES: dict[str, Code] = {
    "150021": Code("systolic", "MDC_PRESS_BLD_NONINV_SYS", MMHG, "8480-6"),
    "150022": Code("diastolic", "MDC_PRESS_BLD_NONINV_DIA", MMHG, "8462-4"),
    "150023": Code("mean_arterial", "MDC_PRESS_BLD_NONINV_MEAN", MMHG, "8478-0"),
    "150456": Code("spo2", "MDC_PULS_OXIM_SAT_O2", PERCENT, "59408-5"),
    # The ECG's heart rate is charted over the oximeter's pulse rate when both are sent.
    "147842": Code("heart_rate", "MDC_ECG_HEART_RATE", BEATS_PER_MIN, "8867-4", rank=0),
    "149530": Code("heart_rate", "MDC_PULS_OXIM_PULS_RATE", BEATS_PER_MIN, "8889-8", rank=1),
    "151562": Code("resp_rate", "MDC_RESP_RATE", RESP_PER_MIN, "9279-1"),
    "150344": Code("temperature_c", "MDC_TEMP", DEGREES_C, "8310-5"),
    "150364": Code("temperature_c", "MDC_TEMP_BODY", DEGREES_C, "8310-5"),
}
# NIBP sent as one observation whose value has the components systolic^diastolic^mean.
NIBP_COMPOUND = "150020"
NIBP_PARTS = ("150021", "150022", "150023")
CODES_BY_NAME = {code.name: number for number, code in CODES.items()} | {
    "MDC_PRESS_BLD_NONINV": NIBP_COMPOUND
}
# OBX-11 statuses that carry no usable value: cannot be obtained, deleted, wrong.
NO_VALUE_STATUSES = {"X", "D", "W", "N"}
CLOCK_SKEW = timedelta(minutes=5)


class Refused(Exception):
    """The message is answered AR (could not be read) or AE (read, but not acceptable)."""

    def __init__(self, outcome: str, reason: str, control_id: str = "", error_code: str = "207"):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.control_id = control_id
        self.error_code = error_code  # HL7 table 0357


@dataclass
class Envelope:
    """What a parsed message says about itself: who sent it and which message it is."""

    message: Message
    control_id: str
    version: str
    sender: str  # MSH-3 as sent
    identifiers: set[str]  # every id in MSH-3 and OBX-18, to find the device on MLLP


@dataclass
class Group:
    """The values of one observation time (to the minute)."""

    observed_at: datetime
    values: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


@dataclass
class Observations:
    groups: list[Group]
    unknown: list[str]  # raw OBX segments whose codes we do not map
    skipped: list[str]  # why some OBX carried nothing usable


def normalise(raw: str) -> str:
    """Segments end in CR; files and curl send LF or CRLF, which hl7apy would not split."""
    return raw.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x00")


def read_envelope(raw: str) -> Envelope:
    """Parse the message; Refused AR when it is not a readable HL7 v2 ORU^R01."""
    text = normalise(raw)
    if not text.startswith("MSH"):
        raise Refused("AR", "The message does not start with an MSH segment.", error_code="100")
    try:
        message = parse_message(text, validation_level=TOLERANT, find_groups=False)
        msh = message.msh
        control_id = msh.msh_10.to_er7()[:64]
        version = msh.msh_12.to_er7()
        kind = (msh.msh_9.msh_9_1.to_er7(), msh.msh_9.msh_9_2.to_er7())
        sender = msh.msh_3.to_er7()
        identifiers = {sender, *_components(msh.msh_3, 1, 2)}  # HD: namespace, universal id
        for obx in message.obx:
            # EI: entity identifier and universal id (the EUI-64 of the device)
            identifiers.update({obx.obx_18.to_er7(), *_components(obx.obx_18, 1, 3)})
    # hl7apy refuses bad input with its own exceptions and, on some shapes, plain ones.
    except (HL7apyException, ValueError, IndexError, KeyError, TypeError, AttributeError) as error:
        raise Refused("AR", f"The message could not be parsed as HL7 v2: {error}"[:300]) from error
    if not control_id:
        raise Refused("AR", "MSH-10 (message control id) is empty.", error_code="101")
    if kind != ("ORU", "R01"):
        raise Refused(
            "AR",
            f"Only ORU^R01 is accepted, not {'^'.join(kind).strip('^') or 'an empty MSH-9'}.",
            control_id,
            error_code="200",
        )
    identifiers = {value for value in identifiers if value}
    return Envelope(message, control_id, version, sender, identifiers)


def _component(element, position: int) -> str:
    """Component `position` (1-based) of a field; hl7apy leaves empty ones out of children."""
    for child in element.children:
        if child.name.rsplit("_", 1)[-1] == str(position):
            return child.to_er7()
    return ""


def _components(element, *positions: int) -> list[str]:
    if not element.children:
        return [element.to_er7()] if 1 in positions else []
    return [_component(element, position) for position in positions]


DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


def parse_time(value: str, zone: tzinfo) -> datetime | None:
    """An HL7 DTM to at least the minute; without an offset it is the clinic's wall clock."""
    match = DTM.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return (local - sign * delta).replace(tzinfo=UTC)
    return local.replace(tzinfo=zone).astimezone(UTC)


def _unit_problem(code: Code, unit_field, where: str) -> str | None:
    """None when OBX-6 names the unit we chart (or may be left out); else why it is refused."""
    sent = unit_field.to_er7()
    if not sent:
        if code.unit.implied_when_missing:
            return None
        return f"{where}: OBX-6 (unit) is missing; {code.name} needs {code.unit.name}."
    first, second = _components(unit_field, 1, 2)
    accepted = {code.unit.code, code.unit.name, *code.unit.synonyms}
    if first in accepted or (not first and second in accepted):
        return None
    return (
        f"{where}: unit {sent} is not {code.unit.name} ({code.unit.code}); "
        "values are not converted."
    )


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise Refused("AE", f"{where}: value {text!r} is not a number.", error_code="102")
    return value


def _obx_time(obx, fallback: datetime | None, zone: tzinfo, where: str) -> datetime:
    sent = obx.obx_14.to_er7()
    if sent:
        when = parse_time(sent, zone)
        if when is None:
            raise Refused("AE", f"{where}: OBX-14 {sent!r} is not a time.", error_code="102")
        return when
    if fallback is None:
        raise Refused("AE", f"{where}: no observation time (OBX-14, OBR-7 or MSH-7).", "", "101")
    return fallback


def _fallback_time(message: Message, zone: tzinfo) -> datetime | None:
    """OBR-7, else MSH-7: the time of observations that carry none of their own."""
    for text in (
        message.obr.obr_7.to_er7(),
        message.msh.msh_7.to_er7(),
    ):
        when = parse_time(text, zone) if text else None
        if when is not None:
            return when
    return None


def observations(envelope: Envelope, zone: tzinfo, now: datetime | None = None) -> Observations:
    """Map every OBX to our fields, grouped by observation time (to the minute).

    Refused AE (with the control id) for a wrong or missing unit, a value that is not a
    number, a time that cannot be read or lies in the future.
    """
    now = now or utcnow()
    try:
        return _observations(envelope, zone, now)
    except Refused as refused:
        refused.control_id = envelope.control_id
        raise


def _observations(envelope: Envelope, zone: tzinfo, now: datetime) -> Observations:
    message = envelope.message
    fallback = _fallback_time(message, zone)
    groups: dict[datetime, Group] = {}
    unknown: list[str] = []
    stray: list[tuple[datetime | None, str]] = []  # unknown OBX with the time they carry
    skipped: list[str] = []
    for index, obx in enumerate(message.obx, start=1):
        identifier, text_name = _components(obx.obx_3, 1, 2)
        number = identifier if identifier in CODES or identifier == NIBP_COMPOUND else ""
        number = number or CODES_BY_NAME.get(identifier) or CODES_BY_NAME.get(text_name, "")
        label = f"OBX {obx.obx_1.to_er7() or index} ({obx.obx_3.to_er7() or 'no code'})"
        if not number:
            unknown.append(obx.to_er7())
            stray.append((parse_time(obx.obx_14.to_er7(), zone) or fallback, obx.to_er7()))
            continue
        status = obx.obx_11.to_er7()
        raw_value = obx.obx_5.to_er7()
        if status in NO_VALUE_STATUSES or not raw_value:
            skipped.append(f"{label}: no value (status {status or 'none'}).")
            continue
        when = _obx_time(obx, fallback, zone, label)
        if when > now + CLOCK_SKEW:
            raise Refused(
                "AE", f"{label}: observation time {obx.obx_14.to_er7()} is in the future."
            )
        minute = when.replace(second=0, microsecond=0)
        group = groups.setdefault(minute, Group(minute))
        for code_number, text in _value_pairs(obx, number, raw_value, label):
            code = CODES[code_number]
            problem = _unit_problem(code, obx.obx_6, label)
            if problem:
                raise Refused("AE", problem, error_code="103")
            value = _number(text, label)
            if code.field in group.values and group.ranks[code.field] <= code.rank:
                continue  # the better source already filled it
            group.values[code.field] = value
            group.ranks[code.field] = code.rank
    kept = [group for _, group in sorted(groups.items()) if group.values]
    _place_strays(kept, stray)
    return Observations(kept, unknown, skipped)


def _value_pairs(obx, number: str, raw_value: str, label: str) -> list[tuple[str, str]]:
    """(code number, text) for each value of one OBX: three for a compound NIBP, else one."""
    if number == NIBP_COMPOUND:
        parts = _components(obx.obx_5, 1, 2, 3)
        return [(code, text) for code, text in zip(NIBP_PARTS, parts, strict=True) if text]
    if len(obx.obx_5.children) > 1:
        raise Refused("AE", f"{label}: value {raw_value!r} is not a number.", error_code="102")
    return [(number, raw_value)]


def _place_strays(kept: list[Group], stray: list[tuple[datetime | None, str]]) -> None:
    """An unknown observation stays with the values of its minute, else the first group."""
    for when, segment in stray:
        minute = when.replace(second=0, microsecond=0) if when else None
        home = next((group for group in kept if group.observed_at == minute), None)
        if home is None and kept:
            home = kept[0]
        if home is not None:
            home.unknown.append(segment)


def _plain(text: str) -> str:
    """Free text for an ACK field: HL7 separators and control characters become spaces."""
    return re.sub(r"[|^~\\&\x00-\x1f]", " ", text).strip()[:250]


def ack(
    control_id: str,
    outcome: str,
    reason: str = "",
    *,
    warnings: list[str] | tuple[str, ...] = (),
    error_code: str = "207",
    receiver: str = "",
    now: datetime | None = None,
) -> str:
    """The ACK for one message (HL7 2.6): MSA-1 the outcome, MSA-2 the control id it answers,
    MSA-3 and ERR the reason; one ERR with severity W per warning."""
    now = now or utcnow()
    answer = Message("ACK", version="2.6", validation_level=TOLERANT)
    msh = answer.msh
    msh.msh_3 = APPLICATION
    msh.msh_4 = OUR_FACILITY
    if receiver:
        msh.msh_5 = re.sub(r"[|~\\&\x00-\x1f]", " ", receiver)[:180]  # HD components kept
    msh.msh_7 = now.strftime("%Y%m%d%H%M%S+0000")
    msh.msh_9 = "ACK^R01^ACK"
    msh.msh_10 = f"ACK{now.strftime('%Y%m%d%H%M%S%f')}"
    msh.msh_11 = "P"
    answer.msa.msa_1 = outcome
    answer.msa.msa_2 = _plain(control_id)
    if reason:
        answer.msa.msa_3 = _plain(reason)
        err = answer.add_segment("ERR")
        err.err_3 = f"{error_code}^{ERROR_NAMES.get(error_code, 'Error')}^HL70357"
        err.err_4 = "E"
        err.err_8 = _plain(reason)
    for warning in warnings:
        err = answer.add_segment("ERR")
        err.err_3 = "0^Message accepted^HL70357"
        err.err_4 = "W"
        err.err_8 = _plain(warning)
    return answer.to_er7() + "\r"


ERROR_NAMES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "204": "Unknown key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
