"""Keep the database's record of studies in step with the study files.

A study file may change only together with its version number once participants have taken
it: otherwise their data would point at a study text that no longer exists.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import StudyError
from app.models import REAL, Participant, Study, StudySnapshot
from app.studies.loader import LoadedStudy


def sync(session: Session, studies: dict[str, LoadedStudy]) -> None:
    problems = []
    for s in studies.values():
        row = session.get(Study, s.id)
        if row is None:
            session.add(Study(id=s.id, version=s.spec.version, content_hash=s.content_hash, title=s.spec.title))
        elif row.content_hash != s.content_hash:
            taken = session.scalar(
                select(func.count())
                .select_from(Participant)
                .where(
                    Participant.study_id == s.id,
                    Participant.study_hash == row.content_hash,
                    Participant.origin == REAL,
                )
            )
            if taken and s.spec.version <= row.version:
                problems.append(
                    f"{s.path}: changed after {taken} participants took version {row.version}; "
                    f"raise `version` to {row.version + 1} to serve the new text (their data keep "
                    "the old one)"
                )
                continue
            row.version, row.content_hash, row.title = s.spec.version, s.content_hash, s.spec.title
        if session.get(StudySnapshot, s.content_hash) is None:
            session.add(
                StudySnapshot(content_hash=s.content_hash, study_id=s.id, version=s.spec.version, source=s.source)
            )
        session.flush()
    if problems:
        raise StudyError("studies", problems)
