"""Secrets sealed at rest (issue 9): a staff member's TOTP key is stored encrypted with
TOTP_KEY, which is not in the database (by default instance/totp_key, 0600), so a copy of
the database alone (a backup, a dump, a read-only leak) does not let anyone make codes.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`): authenticated, so a wrong key is
told apart from a right one instead of decrypting to garbage.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

# Every Fernet token starts with its version byte 0x80, base64 "gAAAAA"; a clear TOTP key is
# base32 (A-Z, 2-7), so the two cannot be mistaken for each other.
SEALED_PREFIX = "gAAAAA"


class WrongSealKey(Exception):
    """The configured TOTP_KEY does not open a sealed secret (not the key it was sealed with)."""


def _fernet(key: str) -> Fernet:
    # Any configured string becomes a 32-byte Fernet key; the generated one is 256 random bits.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def seal(secret: str, key: str) -> str:
    return _fernet(key).encrypt(secret.encode()).decode()


def unseal(sealed: str, key: str) -> str:
    try:
        return _fernet(key).decrypt(sealed.encode()).decode()
    except InvalidToken as error:
        raise WrongSealKey(
            "The two-factor secrets cannot be opened: TOTP_KEY (by default instance/totp_key) "
            "is not the key they were sealed with. Restore that key from where the backups' "
            "keys are kept; nothing was changed."
        ) from error
