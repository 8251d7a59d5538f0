"""A bedside monitor for demos and tests: a plausible 40-minute ketamine infusion as IHE PCD-01
ORU^R01 messages, one every 5 minutes (the NIBP cycle), sent over MLLP or HTTP, sped up."""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from .hl7 import BEATS_PER_MIN, DEGREES_C, MMHG, PERCENT, RESP_PER_MIN

INTERVAL_MIN = 5
INFUSION_MIN = 40
PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"


def vitals_at(minute: int, rng: random.Random) -> dict[str, float]:
    """Ketamine raises blood pressure and heart rate by 10-20 % over the first half hour,
    easing towards the end; saturation and breathing stay near baseline."""
    rise = min(minute, 25) / 25 * (1 - max(0, minute - 30) / 40)
    return {
        "systolic": round(122 * (1 + 0.15 * rise) + rng.randint(-3, 3)),
        "diastolic": round(78 * (1 + 0.12 * rise) + rng.randint(-2, 2)),
        "heart_rate": round(72 * (1 + 0.12 * rise) + rng.randint(-2, 2)),
        "resp_rate": 14 + rng.randint(0, 2),
        "spo2": 98 - rng.randint(0, 1),
        "temperature_c": round(36.7 + rng.uniform(-0.1, 0.1), 1),
    }


def message(sender: str, control_id: str, observed_at: datetime, values: dict) -> str:
    """One PCD-01 ORU^R01: NIBP as three OBX, SpO2, ECG heart rate, respiration, temperature."""
    stamp = observed_at.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    rows = [
        ("150021", "MDC_PRESS_BLD_NONINV_SYS", "1.1.9.1", values["systolic"], MMHG),
        ("150022", "MDC_PRESS_BLD_NONINV_DIA", "1.1.9.2", values["diastolic"], MMHG),
        ("150456", "MDC_PULS_OXIM_SAT_O2", "1.1.2.1", values["spo2"], PERCENT),
        ("147842", "MDC_ECG_HEART_RATE", "1.1.1.1", values["heart_rate"], BEATS_PER_MIN),
        ("151562", "MDC_RESP_RATE", "1.1.3.1", values["resp_rate"], RESP_PER_MIN),
        ("150344", "MDC_TEMP", "1.1.4.1", values["temperature_c"], DEGREES_C),
    ]
    segments = [
        f"MSH|^~\\&|{sender}|SIMULATOR|INFUSION_TRACKER|CLINIC|{stamp}||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.6|||NE|AL||UNICODE UTF-8|||{PCD01_PROFILE}",
        "PID|||SIM0001^^^SIMULATOR^PI||Simulated^Patient",
        f"OBR|1|{control_id}^SIMULATOR||182777000^monitoring of patient^SCT|||{stamp}",
    ]
    for number, (code, name, sub_id, value, unit) in enumerate(rows, start=1):
        segments.append(
            f"OBX|{number}|NM|{code}^{name}^MDC|{sub_id}|{value}|{unit.code}^{unit.name}^MDC"
            f"|||||F|||{stamp}"
        )
    return "\r".join(segments) + "\r"


def infusion_messages(sender: str, seed: int = 2026) -> Iterator[tuple[int, Callable[[], str]]]:
    """(minute, build) for each message; build() stamps it with the time it is sent."""
    rng = random.Random(seed)
    run = datetime.now(UTC).strftime("%H%M%S")
    for minute in range(0, INFUSION_MIN + 1, INTERVAL_MIN):
        values = vitals_at(minute, rng)
        control_id = f"SIM{run}-{minute:02d}"
        yield minute, lambda v=values, c=control_id: message(sender, c, datetime.now(UTC), v)


def post(url: str, token: str, body: str, timeout: float = 10) -> str:
    """POST one message to /api/hl7; the ACK in the answer (also for 4xx answers)."""
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's own server)
        url,
        data=body.encode("utf-8"),
        headers={"Content-Type": "application/hl7-v2", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.read().decode("utf-8", errors="replace")


def run(
    send: Callable[[str], str],
    sender: str,
    speed: float,
    report: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send the whole infusion, waiting INTERVAL_MIN/speed real minutes between messages.
    Returns how many were accepted (MSA|AA)."""
    accepted = 0
    for index, (minute, build) in enumerate(infusion_messages(sender)):
        if index:
            sleep(INTERVAL_MIN * 60 / speed)
        ack = send(build())
        msa = next((line for line in ack.split("\r") if line.startswith("MSA")), "no MSA")
        accepted += msa.startswith("MSA|AA")
        report(f"minute {minute:>2}: {msa}")
    return accepted
