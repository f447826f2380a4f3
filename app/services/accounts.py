"""Researcher accounts: argon2 password hashes, signed session cookies, CSRF tokens, rate limits.

Sessions are stateless signed cookies (no server memory, so any number of workers share them);
each carries the researcher's session epoch, which logout bumps, so a logged-out cookie is dead
everywhere. Login attempts are counted in the database for the same reason.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import AppError
from app.models import LoginAttempt, Researcher, utcnow

HASHER = PasswordHasher()
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COOKIE = "fm-session"
MIN_PASSWORD = 12


def add_researcher(session: Session, email: str, password: str | None) -> tuple[Researcher, str]:
    """Create an account; returns it and the password (generated when none is given)."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise AppError(f"{email!r} is not an e-mail address")
    if session.scalar(select(Researcher).where(Researcher.email == email)):
        raise AppError(f"a researcher {email} already exists")
    password = password or secrets.token_urlsafe(15)
    if len(password) < MIN_PASSWORD:
        raise AppError(f"passwords need at least {MIN_PASSWORD} characters")
    r = Researcher(email=email, password_hash=HASHER.hash(password))
    session.add(r)
    session.flush()
    return r, password


def login_keys(email: str, ip: str, device: str | None) -> list[str]:
    """What a login attempt is counted against: the client's address, and the account, or, from a
    browser this account has logged in from before (its device cookie), that browser instead.

    So a stranger's failures lock the account for browsers it has never been used from, never for
    the owner's own: nobody can lock the owner out (OWASP's "device cookies")."""
    return [f"ip:{ip}", f"device:{device}" if device else f"email:{email.strip().lower()}"]


def rate_limited(session: Session, keys: list[str], per_minute: int, now: dt.datetime | None = None) -> bool:
    """Whether any one key has `per_minute` failures in the last minute (each failure counts once)."""
    now = now or utcnow()
    since = now - dt.timedelta(minutes=1)
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - dt.timedelta(days=1)))
    most = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.key.in_(keys), LoginAttempt.at >= since, LoginAttempt.success.is_(False))
        .group_by(LoginAttempt.key)
        .order_by(func.count().desc())
        .limit(1)
    )
    return (most or 0) >= per_minute


def authenticate(session: Session, email: str, password: str, keys: list[str]) -> Researcher | None:
    """The researcher these credentials are, or None; the attempt is recorded once under each key."""
    email = email.strip().lower()
    r = session.scalar(select(Researcher).where(Researcher.email == email))
    ok = False
    if r is not None:
        try:
            ok = HASHER.verify(r.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        HASHER.hash(password)  # same work for unknown e-mails: timing says nothing
    for key in keys:
        session.add(LoginAttempt(key=key, success=ok))
    if ok and r is not None:
        r.last_login_at = utcnow()
        if HASHER.check_needs_rehash(r.password_hash):
            r.password_hash = HASHER.hash(password)
        return r
    return None


@dataclass
class Login:
    researcher_id: int
    epoch: int
    csrf: str


class Sessions:
    def __init__(self, secret: str, max_age: int) -> None:
        self.signer = URLSafeTimedSerializer(secret, salt="fieldmark-researcher")
        self.max_age = max_age

    def issue(self, r: Researcher) -> str:
        return self.signer.dumps({"id": r.id, "epoch": r.session_epoch, "csrf": secrets.token_urlsafe(24)})

    def read(self, cookie: str | None) -> Login | None:
        if not cookie:
            return None
        try:
            data = self.signer.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        try:
            return Login(int(data["id"]), int(data["epoch"]), str(data["csrf"]))
        except (KeyError, TypeError, ValueError):
            return None


class Devices:
    """Device cookies: a browser an account has logged in from, signed, for a year."""

    COOKIE = "fm-device"
    MAX_AGE = 365 * 24 * 3600

    def __init__(self, secret: str) -> None:
        self.signer = URLSafeTimedSerializer(secret, salt="fieldmark-device")

    def issue(self, email: str) -> str:
        return self.signer.dumps({"email": email.strip().lower(), "nonce": secrets.token_urlsafe(12)})

    def read(self, cookie: str | None, email: str) -> str | None:
        """The device's nonce, if the cookie is this account's."""
        if not cookie:
            return None
        try:
            data = self.signer.loads(cookie, max_age=self.MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("email") != email.strip().lower():
            return None
        return str(data.get("nonce", "")) or None


def current(session: Session, login: Login | None) -> Researcher | None:
    if login is None:
        return None
    r = session.get(Researcher, login.researcher_id)
    return r if r is not None and r.session_epoch == login.epoch else None
