"""The audit log: one place that records what a researcher did to a study's data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditEntry, Researcher


def record(session: Session, who: Researcher | None, action: str, study_id: str | None, **detail: Any) -> AuditEntry:
    """Add an entry in the caller's transaction (it commits with the action it records)."""
    entry = AuditEntry(researcher_id=who.id if who else None, study_id=study_id, action=action, detail=detail or None)
    session.add(entry)
    return entry


def entries(session: Session, study_id: str, limit: int = 100) -> list[AuditEntry]:
    q = select(AuditEntry).where(AuditEntry.study_id == study_id).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(q))


def describe(entry: AuditEntry) -> str:
    """An entry's details in a line a person reads: "open → paused", "cap: 3 → 5", a file's name."""
    d = entry.detail or {}
    if isinstance(d.get("before"), dict) and isinstance(d.get("after"), dict):  # limits: what changed
        before, after = d["before"], d["after"]

        def limit(v: Any) -> str:
            return "no limit" if v is None else str(v)

        parts = (
            [f"cap: {limit(before.get('cap'))} → {limit(after.get('cap'))}"]
            if before.get("cap") != after.get("cap")
            else []
        )
        bq, aq = before.get("quotas") or {}, after.get("quotas") or {}
        parts += [
            f"quota {c}: {limit(bq.get(c))} → {limit(aq.get(c))}" for c in sorted({*bq, *aq}) if bq.get(c) != aq.get(c)
        ]
        return "; ".join(parts) or "the study file's limits, now set on the dashboard"
    if "before" in d and "after" in d:
        return f"{d['before']} → {d['after']}"
    return "; ".join(f"{v}" if k == "file" else f"{k}: {v}" for k, v in d.items())


def recent(session: Session, study_id: str, limit: int = 20) -> list[tuple[AuditEntry, str | None]]:
    """The study's latest entries, newest first, each with the researcher's e-mail."""
    q = (
        select(AuditEntry, Researcher.email)
        .outerjoin(Researcher, Researcher.id == AuditEntry.researcher_id)
        .where(AuditEntry.study_id == study_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return [(e, email) for e, email in session.execute(q)]
