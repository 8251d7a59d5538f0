"""Password policy (NIST SP 800-63B style): 12–128 characters, no composition rules,
common passwords refused; hashed with werkzeug's scrypt."""

import re
from functools import lru_cache

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common leaked passwords; we use its list, not its scoring.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, username: str = "") -> list[str]:
    """Reasons the password is not acceptable; empty when it is."""
    config = current_app.config
    low, high = config["PASSWORD_MIN_LENGTH"], config["PASSWORD_MAX_LENGTH"]
    if len(password) < low:
        return [f"Password must be at least {low} characters."]
    if len(password) > high:
        return [f"Password must be at most {high} characters."]
    lowered = password.lower()
    stem = re.sub(r"[\d\W_]+$", "", lowered)  # "password2024!" is still "password"
    if lowered in common_passwords() or stem in common_passwords() or len(set(lowered)) < 4:
        return ["That password is too common or too easy to guess. Try a few unrelated words."]
    if username and username.lower() in lowered:
        return ["The password must not contain the username."]
    return []


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def verify_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)
