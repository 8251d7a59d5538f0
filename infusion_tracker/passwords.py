"""Password policy (NIST SP 800-63B §5.1.1.2): 12–128 characters, no composition rules,
common and context-specific passwords refused, and a zxcvbn strength score of at least
PASSWORD_MIN_SCORE (catches digit runs, keyboard walks and repeats that a blocklist strips to
nothing); hashed with werkzeug's scrypt."""

import re
import secrets
from functools import lru_cache

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

# Words anyone would guess for this application's accounts.
CONTEXT_WORDS = ("infusion", "ketamine", "tracker", "clinic", "welcome", "changeme")
# Unambiguous characters for temporary passwords read out or copied by hand (no 0/O, 1/l/I).
TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# zxcvbn refuses longer input (its matching is quadratic); more characters only add strength.
ZXCVBN_MAX = 72


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The 30,000 most common leaked passwords, as shipped with zxcvbn (a pinned requirement)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def _core(password: str) -> str:
    """The password without the digits and symbols people pad common words with."""
    return re.sub(r"^[\d\W_]+|[\d\W_]+$", "", password.lower())


def _is_repetition(text: str) -> bool:
    """'abcabcabcabc', 'qwertyqwerty': one short unit repeated."""
    return bool(text) and re.fullmatch(r"(.{1,6})\1+", text) is not None


def problems(password: str, username: str = "") -> list[str]:
    """Reasons the password is not acceptable; empty when it is."""
    config = current_app.config
    low, high = config["PASSWORD_MIN_LENGTH"], config["PASSWORD_MAX_LENGTH"]
    if len(password) < low:
        return [f"Password must be at least {low} characters (it has {len(password)})."]
    if len(password) > high:
        return [f"Password must be at most {high} characters."]
    lowered = password.lower()
    squeezed = re.sub(r"[\s._-]+", "", lowered)
    core = _core(squeezed)
    common = common_passwords()
    if (
        lowered in common
        or squeezed in common
        or core in common
        or _is_repetition(squeezed)
        or _is_repetition(core)
        or len(set(lowered)) < 4
    ):
        return ["That password is too common or too easy to guess. Try a few unrelated words."]
    if username and len(username) >= 3 and username.lower() in lowered:
        return ["The password must not contain the username."]
    clinic = config.get("CLINIC_NAME", "").lower().replace(" ", "")
    if core in CONTEXT_WORDS or (clinic and core == clinic):
        return ["That password is too easy to guess here. Try a few unrelated words."]
    weakness = _weakness(password, [username, config.get("CLINIC_NAME", ""), *CONTEXT_WORDS])
    return [weakness] if weakness else []


def _weakness(password: str, context: list[str]) -> str | None:
    """zxcvbn's verdict with its feedback, when the score is below the clinic's minimum."""
    from zxcvbn import zxcvbn  # only when a password is set: its import is ≈ 50 ms of start-up

    result = zxcvbn(password[:ZXCVBN_MAX], user_inputs=[word for word in context if word])
    if result["score"] >= current_app.config["PASSWORD_MIN_SCORE"]:
        return None
    feedback = result["feedback"]
    advice = [feedback["warning"], *feedback["suggestions"]] if feedback["warning"] else [
        *feedback["suggestions"]
    ]
    advice = advice or ["Try a few unrelated words."]
    return "That password is too easy to guess. " + " ".join(advice)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def verify_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


def temporary_password() -> str:
    """A random one-time password, four groups of four (about 79 bits), e.g. 'k7qm-x4tz-…'."""
    while True:
        groups = ["".join(secrets.choice(TEMPORARY_ALPHABET) for _ in range(4)) for _ in range(4)]
        candidate = "-".join(groups)
        if not problems(candidate):
            return candidate
