"""Entering a study: who is opening the link, and when a participation begins.

Nothing is stored until the person consents: opening a study link (a person, a link preview, a
crawler) only hands out a signed note, `Joining`, kept in a cookie, and shows the consent page;
the participant row is created by the consent answer (`join`). A returning visitor resumes only
with something that only they have: their private link, the cookie their browser kept, or the
SESSION_ID Prolific gave that very submission. A Prolific id alone is not enough (it is not a
secret), and whoever has taken part already, to the end or screened out, is told so rather than
given a second participation.

No HTTP here: the routes read cookies and query strings, this decides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Refused
from app.models import REAL, Participant
from app.studies.loader import LoadedStudy
from app.studies.schema import DevicePolicy

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ACTIVE = ("started", "active")


def new_code() -> str:
    return secrets.token_urlsafe(18)


def bot_key(secret: str, study_id: str) -> str:
    """What a simulated participant (app/bots.py) adds to the study link as FM_BOT, so that its
    data are marked as a bot's. Made with the server's secret: a visitor cannot mark themselves."""
    return hmac.new(secret.encode(), f"bot:{study_id}".encode(), hashlib.sha256).hexdigest()[:24]


@dataclass(frozen=True)
class Joining:
    """Someone who opened the study link and has not answered the consent page: held in a signed
    cookie, never in the database."""

    study_id: str
    code: str  # their private link's code, once they consent
    pid: str | None = None
    ext_study: str | None = None
    ext_session: str | None = None
    origin: str = REAL


class JoinNotes:
    """Signs and reads `Joining` notes (the cookie's value)."""

    def __init__(self, secret: str) -> None:
        self.signer = URLSafeSerializer(secret, salt="fieldmark-join")

    def dump(self, j: Joining) -> str:
        return self.signer.dumps(asdict(j))

    def load(self, value: str | None) -> Joining | None:
        if not value:
            return None
        try:
            data = self.signer.loads(value)
            return Joining(**data)
        except (BadSignature, TypeError, ValueError):
            return None


@dataclass
class Entry:
    """What opening the study link leads to."""

    kind: Literal["resume", "already", "elsewhere", "join"]
    participant: Participant | None = None
    joining: Joining | None = None


def check_ids(pid: str | None, ext_study: str | None, ext_session: str | None) -> None:
    for name, value in (("PROLIFIC_PID", pid), ("STUDY_ID", ext_study), ("SESSION_ID", ext_session)):
        if value is not None and not EXTERNAL_ID.match(value):
            raise Refused(
                f"{name} is not a valid id (letters, digits, '-' and '_', at most 64)", title="This link is not valid"
            )


def enter(
    session: Session,
    study: LoadedStudy,
    pid: str | None,
    ext_study: str | None,
    ext_session: str | None,
    cookie_code: str | None,
    pending: list[Joining] | None = None,
    origin: str = REAL,
) -> Entry:
    """Decide what the study link does for this visitor; stores nothing.

    With a Prolific id, that id's participation (if any) decides: finished -> "already"; still
    going -> "resume" if the browser's cookie or the SESSION_ID matches it, else "elsewhere"
    (someone else's, or theirs on another device: they continue from their private link or from
    Prolific). Without one, the browser's cookie decides the same way. Otherwise "join", reusing
    the note of a consent page this browser already has open (`pending`: two tabs, one participation)."""
    check_ids(pid, ext_study, ext_session)
    found: Participant | None = None
    if pid:
        found = session.scalar(
            select(Participant).where(Participant.study_id == study.id, Participant.external_pid == pid)
        )
    elif cookie_code:
        found = session.scalar(
            select(Participant).where(Participant.code == cookie_code, Participant.study_id == study.id)
        )
    if found is not None:
        if found.status not in ACTIVE:
            return Entry("already", found)
        proven = found.code == cookie_code or (
            ext_session is not None and found.external_session is not None and ext_session == found.external_session
        )
        return Entry("resume" if proven else "elsewhere", found)
    for j in pending or []:
        if (j.study_id, j.pid, j.ext_session) == (study.id, pid, ext_session):
            return Entry("join", joining=j)
    return Entry("join", joining=Joining(study.id, new_code(), pid, ext_study, ext_session, origin))


def join(session: Session, study: LoadedStudy, j: Joining) -> Participant:
    """The participant row, created as they answer the consent page (in the caller's transaction).

    Two consent answers at once for one note (a double click) or one Prolific id (two tabs) make
    one row: the second insert fails on a unique key, and the row the first made is used if it is
    theirs (the same code, or the same Prolific id and SESSION_ID)."""
    p = Participant(
        code=j.code,
        study_id=study.id,
        study_hash=study.content_hash,
        manifest_hash=study.manifest_hash or None,
        seed=secrets.randbits(31),
        external_pid=j.pid,
        external_study=j.ext_study,
        external_session=j.ext_session,
        origin=j.origin,
    )
    try:
        with session.begin_nested():
            session.add(p)
            session.flush()
        return p
    except IntegrityError:
        pass
    theirs = session.scalar(select(Participant).where(Participant.code == j.code))
    if theirs is None and j.pid:
        same = session.scalar(
            select(Participant).where(Participant.study_id == study.id, Participant.external_pid == j.pid)
        )
        if same is not None and j.ext_session is not None and same.external_session == j.ext_session:
            theirs = same
    if theirs is None:
        raise Refused(
            "This Prolific id has already started this study. Continue from the device where you started.",
            title="Already started",
        )
    return theirs


# -- the browser they take part on ------------------------------------------------------------------
DEVICE_CLASSES = ("desktop", "tablet", "phone")
_PHONE_UA = re.compile(r"iPhone|Android.+Mobile|Mobile Safari|Windows Phone", re.I)
_TABLET_UA = re.compile(r"iPad|Android(?!.*Mobile)|Tablet", re.I)


@dataclass(frozen=True)
class Device:
    device_class: str | None
    viewport_w: int | None
    viewport_h: int | None
    screen_w: int | None
    screen_h: int | None


def _pixels(form: dict[str, str], name: str) -> int | None:
    v = form.get(name, "")
    return int(v) if v.isdigit() and 0 < int(v) <= 20000 else None


def device_of(form: dict[str, str], user_agent: str) -> Device:
    """What static/js/device.js reported in the consent form (sizes in CSS pixels); without
    JavaScript, the class from the user agent and no sizes. Nonsense is dropped, not refused:
    these are measurements, not answers."""
    cls = form.get("device_class")
    if cls not in DEVICE_CLASSES:
        cls = "phone" if _PHONE_UA.search(user_agent) else "tablet" if _TABLET_UA.search(user_agent) else None
        cls = cls or ("desktop" if user_agent else None)
    return Device(cls, *(_pixels(form, n) for n in ("viewport_w", "viewport_h", "screen_w", "screen_h")))


def unsuitable(policy: DevicePolicy, d: Device) -> str | None:
    """Why this browser cannot take the study (None: it can). Unknown sizes (no JavaScript) pass."""
    if policy.desktop_only and d.device_class in ("phone", "tablet"):
        return "This study needs a computer with a larger screen: it cannot be taken on a phone or a tablet."
    if policy.min_width and d.viewport_w is not None and d.viewport_w < policy.min_width:
        return (
            f"This study needs a browser window at least {policy.min_width} pixels wide (yours is {d.viewport_w}). "
            "Make the window larger or use a computer, then open the study link again."
        )
    if policy.min_height and d.viewport_h is not None and d.viewport_h < policy.min_height:
        return (
            f"This study needs a browser window at least {policy.min_height} pixels tall (yours is {d.viewport_h}). "
            "Make the window larger or use a computer, then open the study link again."
        )
    return None


def record_device(p: Participant, d: Device) -> None:
    p.device_class, p.viewport_w, p.viewport_h, p.screen_w, p.screen_h = (
        d.device_class,
        d.viewport_w,
        d.viewport_h,
        d.screen_w,
        d.screen_h,
    )
