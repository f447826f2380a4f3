"""Database tables (SQLAlchemy 2, typed). Migrations live in migrations/ (Alembic).

Every participant and every response carries the study's content hash, so data can always be
traced to the exact study file that produced it. One table holds every kind of answer; the
step types and tasks (app/steps/) declare which fields each kind records, and those
declarations generate the export's columns and codebook.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(t: dt.datetime) -> dt.datetime:
    """A stored time as UTC (SQLite hands times back without their zone)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


REAL = "real"
ORIGINS = (REAL, "pilot", "bot")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class Study(Base):
    """A study file as loaded: the current version; earlier versions live in study_snapshots."""

    __tablename__ = "studies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    assign_lock: Mapped[int] = mapped_column(Integer, default=0)  # bumped to serialise assignments
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Operations (app/services/recruitment.py): whether new participants may start, and the limits
    # set on the dashboard (None: the study file's recruitment section applies).
    state: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    state_changed_at: Mapped[dt.datetime | None]
    cap: Mapped[int | None]
    quotas: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class StudySnapshot(Base):
    """Every version of every study file ever served, byte for byte."""

    __tablename__ = "study_snapshots"
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int]
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "external_pid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # the secret in the participant's link
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    study_hash: Mapped[str] = mapped_column(String(64))
    manifest_hash: Mapped[str | None] = mapped_column(String(64))  # the asset run's manifest they were shown
    condition: Mapped[str | None] = mapped_column(String(64))
    item_set: Mapped[int | None]
    seed: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="started", index=True)
    cursor: Mapped[int] = mapped_column(default=0)  # the page the participant is on
    served_page: Mapped[int | None]  # the page last served to them, first served at `served_at` (server clock)
    served_at: Mapped[dt.datetime | None]
    external_pid: Mapped[str | None] = mapped_column(String(64))
    external_study: Mapped[str | None] = mapped_column(String(64))
    external_session: Mapped[str | None] = mapped_column(String(64))
    # Who this is: "real" (a participant), "pilot" (a researcher's preview) or "bot" (a simulated
    # participant). Only real ones count: monitor, balancing, analysis and exports leave the others out.
    origin: Mapped[str] = mapped_column(String(16), default="real", index=True)
    # The browser they consented on (device.js fills these in; empty without JavaScript)
    device_class: Mapped[str | None] = mapped_column(String(16))  # desktop, tablet, phone
    viewport_w: Mapped[int | None]
    viewport_h: Mapped[int | None]
    screen_w: Mapped[int | None]
    screen_h: Mapped[int | None]
    end_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    assigned_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]

    @property
    def is_real(self) -> bool:
        return self.origin == REAL

    responses: Mapped[list[Response]] = relationship(back_populates="participant", order_by="Response.page")


class Assignment(Base):
    """The assignment log: who went to which condition, and the counts that decided it."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    condition: Mapped[str] = mapped_column(String(64))
    item_set: Mapped[int]
    counts: Mapped[dict[str, Any]]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Response(Base):
    """One answered page: consent, questionnaire, attention check or trial (once per participant)."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("participant_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    study_id: Mapped[str] = mapped_column(String(64), index=True)
    study_hash: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(120))  # step id, or step id:trial index
    page: Mapped[int]
    step_id: Mapped[str] = mapped_column(String(64))
    step_type: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str | None] = mapped_column(String(32))
    task: Mapped[str | None] = mapped_column(String(32))
    trial_index: Mapped[int | None]
    condition: Mapped[str | None] = mapped_column(String(64))
    item_id: Mapped[str | None] = mapped_column(String(64))
    asset_id: Mapped[str | None] = mapped_column(String(200))  # the explanation shown, if any
    explanation: Mapped[str | None] = mapped_column(String(32))  # what kind was shown
    true_class: Mapped[int | None]
    model_prediction: Mapped[int | None]
    model_confidence: Mapped[float | None] = mapped_column(Float)
    model_correct: Mapped[bool | None]
    answer: Mapped[str | None] = mapped_column(String(200))
    correct: Mapped[bool | None]
    confidence: Mapped[int | None]
    first_answer: Mapped[str | None] = mapped_column(String(200))  # two-stage: before the model's advice
    first_correct: Mapped[bool | None]
    first_confidence: Mapped[int | None]
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # questionnaire answers and the like
    onset_ms: Mapped[float | None] = mapped_column(Float)  # client performance.now() at stimulus onset
    response_ms: Mapped[float | None] = mapped_column(Float)
    first_onset_ms: Mapped[float | None] = mapped_column(Float)
    first_response_ms: Mapped[float | None] = mapped_column(Float)
    rt_ms: Mapped[float | None] = mapped_column(Float)
    tab_hidden: Mapped[bool | None] = mapped_column(Boolean)  # the tab was hidden while the trial was shown
    complete: Mapped[bool] = mapped_column(Boolean, default=True)  # False between the stages of a two-stage trial
    first_received_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    served_at: Mapped[dt.datetime | None]  # trials: when the server first sent the page (server clock)
    server_rt_ms: Mapped[float | None] = mapped_column(Float)  # received_at - served_at: needs no JavaScript

    participant: Mapped[Participant] = relationship(back_populates="responses")


class Event(Base):
    """Things worth knowing that are not answers: an image that failed to load, a timeout."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    study_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    page: Mapped[int | None]
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Researcher(Base):
    __tablename__ = "researchers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    session_epoch: Mapped[int] = mapped_column(default=0)  # bumped at logout: old cookies stop working
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]


class LoginAttempt(Base):
    """Recent login attempts, for rate limiting across every worker and replica."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)  # "email:<address>" or "ip:<address>"
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class AuditEntry(Base):
    """What a researcher did that changes or reveals data (deleting participants, downloading raw
    ids, opening or closing a study): who, what, when, and the details. Never deleted."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    researcher_id: Mapped[int | None] = mapped_column(ForeignKey("researchers.id"), index=True)
    study_id: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
