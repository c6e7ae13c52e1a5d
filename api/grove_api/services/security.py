"""Passwords (argon2), tokens (JWT HS256 only), the signing key and login throttling."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from grove_api.errors import Throttled, Unauthenticated
from grove_api.settings import Settings
from grove_api.store import DuplicateError, Store

log = logging.getLogger("grove_api")

ALGORITHM = "HS256"
KEY_FILE = "jwt-secret"
ACCESS = "access"
REFRESH = "refresh"
REQUIRED_CLAIMS = ["sub", "roles", "organization", "exp", "type", "iat", "jti"]


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        # Unknown users cost as much as known ones: the time of a login tells nothing.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy, password) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        return self._hasher.check_needs_rehash(hashed)


def load_signing_key(settings: Settings) -> bytes:
    """The configured key, else the one generated on first start in the data dir (mode 0600)."""
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value().encode()
        if len(key) < 32:
            raise ValueError("GROVE_JWT_SECRET must be at least 32 bytes long")
        return key
    path = Path(settings.data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another worker process may be writing it right now: wait for the whole key.
        deadline = time.monotonic() + 10
        while True:
            key = path.read_bytes().strip()
            if len(key) >= 64 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(key) < 32:
            raise ValueError(
                f"{path}: the signing key is too short; remove the file to make a new one"
            ) from None
        if path.stat().st_mode & 0o077:
            raise ValueError(f"{path}: the signing key must not be readable by others (chmod 600)") from None
        return key
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    log.info("generated the token signing key in %s", path)
    return path.read_bytes().strip()


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    roles: list[str]
    organization: str
    type: str
    exp: int
    iat: int
    jti: str
    pwv: int = 0  # the user's password version: a password change ends older tokens


class Tokens:
    def __init__(self, key: bytes, settings: Settings) -> None:
        self._key = key
        self._ttl = {ACCESS: settings.access_token_minutes * 60, REFRESH: settings.refresh_token_days * 86400}

    def issue(self, username: str, roles: list[str], organization: str, kind: str, pwv: int = 0) -> str:
        now = int(time.time())
        claims = {
            "sub": username,
            "roles": list(roles),
            "organization": organization,
            "type": kind,
            "iat": now,
            "exp": now + self._ttl[kind],
            "jti": uuid.uuid4().hex,
            "pwv": pwv,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def decode(self, token: str, kind: str) -> TokenClaims:
        try:
            # Only HS256: `alg: none` and every other algorithm (RS256 with our key as a "public
            # key", ...) are refused here.
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired: log in again") from None
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        if claims.get("type") != kind:
            raise Unauthenticated(
                f"a {claims.get('type')!r} token cannot be used here: send the {kind} token"
            )
        if not isinstance(claims["sub"], str) or not isinstance(claims["roles"], list):
            raise Unauthenticated("invalid token: malformed claims")
        pwv = claims.get("pwv", 0)
        return TokenClaims(
            **{name: claims[name] for name in REQUIRED_CLAIMS}, pwv=pwv if isinstance(pwv, int) else -1
        )


class LoginThrottle:
    """After `login_max_failures` failed logins of one user from one client, further attempts of that
    pair wait out a lockout that doubles while failures go on; a success clears it. Shared by all
    worker processes through the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.max_failures = settings.login_max_failures
        self.base = settings.login_lockout_seconds
        self.cap = settings.login_lockout_max_seconds

    @staticmethod
    def key(username: str, client: str) -> str:
        return hashlib.sha256(f"{username}\0{client}".encode()).hexdigest()[:24]

    def check(self, key: str) -> None:
        record = self.store.get("login_failures", key)
        if record is None:
            return
        wait = record.get("locked_until", 0) - time.time()
        if wait > 0:
            raise Throttled("too many failed logins: try again later", retry_after=math.ceil(wait))

    def failed(self, key: str) -> None:
        record = self.store.get("login_failures", key)
        failures = (record or {}).get("failures", 0) + 1
        locked_until = 0.0
        if failures >= self.max_failures:
            locked_until = time.time() + min(self.cap, self.base * 2 ** (failures - self.max_failures))
        doc = {"failures": failures, "locked_until": locked_until, "last": time.time()}
        if record is None:
            try:
                self.store.insert("login_failures", {"_id": key, **doc})
                return
            except DuplicateError:  # a concurrent failure created it: count on that one
                pass
        self.store.update("login_failures", key, doc)

    def succeeded(self, key: str) -> None:
        self.store.delete("login_failures", key)
