"""Who may change the store over HTTP: a hashed password, a bearer token, or nobody.

The password is kept as a scrypt hash in a file of its own (``web.password_file``,
written by ``edgeknn web password``), read at each login so that a new password
works without a restart.  API clients may send ``Authorization: Bearer <token>``
instead (``web.token``).  A browser that logged in holds a signed session
cookie (Starlette's SessionMiddleware, SameSite=Strict) and must echo the
session's CSRF token in the ``X-CSRF-Token`` header of every write.

Everything here but :func:`read_password_hash` and :func:`write_password_hash`
is pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgeknn.errors import PasswordError

# scrypt with n=2**14, r=8: 16 MiB and a few tens of ms per check on a Pi 4.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 8
SCHEME = "scrypt"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64), safe to store in a file."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"the password has {len(password)} characters; at least {MIN_PASSWORD_LENGTH}")
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`; False for a damaged hash."""
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def read_password_hash(path: Path) -> str | None:
    """The stored hash, or None when no password has been set."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PasswordError(f"password file {path}: cannot read ({exc.strerror or exc})") from None
    return text or None


def write_password_hash(path: Path, hashed: str) -> None:
    """Replace the password file atomically, readable by its owner only.

    Run as root (``sudo edgeknn web password``), the file goes to the owner of its
    directory: the service's user owns its state directory and must read it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if os.geteuid() == 0:
            owner = path.parent.stat()
            os.fchown(fd, owner.st_uid, owner.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(hashed + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PasswordError(f"password file {path}: cannot write ({exc.strerror or exc})") from None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing secret never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Access:
    """What a request may do, decided by :func:`access`."""

    read: bool
    write: bool
    reason: str = ""  # why writing (or reading) is refused, for the 401/403 body
    status: int = 200  # 401: log in first; 403: logged in, but the CSRF token is wrong


@dataclass(frozen=True)
class Credentials:
    """What one request carries."""

    logged_in: bool = False  # the session says so
    session_csrf: str | None = None
    header_csrf: str | None = None
    bearer: str | None = None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def access(creds: Credentials, *, token: str, anonymous_writes: bool, protect_reads: bool) -> Access:
    """The rule, in one place: a valid token or a logged-in session with its CSRF token
    may write; reads are open unless ``protect_reads``; ``anonymous_writes`` opens both."""
    if anonymous_writes or same_secret(creds.bearer, token):
        return Access(True, True)
    if creds.bearer is not None:
        return Access(False, False, "the bearer token is wrong", 401)
    if creds.logged_in:
        if same_secret(creds.header_csrf, creds.session_csrf):
            return Access(True, True)
        return Access(True, False, "missing or wrong X-CSRF-Token header; reload the page", 403)
    reason = "log in first (or send Authorization: Bearer <web.token>)"
    return Access(not protect_reads, False, reason, 401)
