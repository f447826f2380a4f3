"""Pictures shared across studies: which a study teaches, which it tests, and where they meet.

A participant who takes two studies of one asset run may see a picture labelled in one (feedback
that names the species, nearest examples, concept galleries) and be tested on it in the other.
That is sometimes acceptable (participants are kept from taking both, e.g. with a Prolific block
list) but never an accident: the testing study names the teaching one in `shares_stimuli_with`,
and `fieldmark study check` refuses an overlap that is not declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.steps import TASKS
from app.studies.explanations import KINDS, explanation_for
from app.studies.loader import LoadedStudy


def taught(study: LoadedStudy) -> set[int]:
    """Images the study shows with their species named, in any condition or item set."""
    out: set[int] = set()
    for block in study.spec.blocks:
        items = [it for s in study.items.get(block.id, []) for it in s]
        if block.feedback and TASKS[block.task].names_species:
            out |= {it.image_id for it in items}
        if block.explanation or block.two_stage:
            for condition in study.spec.conditions:
                kind = KINDS.get(condition.explanation)
                if kind is None:
                    continue
                for it in items:
                    found = explanation_for(study.entries[it.image_id], condition)
                    if found is not None:
                        out |= kind.labelled(found)
    for name in dict.fromkeys(c.explanation for c in study.spec.conditions):
        if name in KINDS:
            out |= KINDS[name].study_labelled(study.manifest)
    return out


def tested(study: LoadedStudy) -> set[int]:
    """Images of blocks answered without feedback: what the study measures."""
    return {it.image_id for b in study.spec.blocks if not b.feedback for s in study.items.get(b.id, []) for it in s}


@dataclass(frozen=True)
class Overlap:
    teacher: str  # study id
    tester: str
    images: tuple[int, ...]
    declared: bool  # the tester names the teacher in shares_stimuli_with

    def line(self, path: str) -> str:
        ids = list(self.images)
        shown = f"{ids[:12]}{' and more' if len(ids) > 12 else ''}"
        if self.declared:
            return (
                f"{path}: tests {len(ids)} pictures that {self.teacher} shows labelled (images {shown}); declared in "
                "shares_stimuli_with: keep participants from taking both"
            )
        return (
            f"{path}: tests {len(ids)} pictures that study {self.teacher!r} shows labelled (images {shown}); "
            f"draw other pictures with `avoid_stimuli_of: [{self.teacher}]`, or accept it with "
            f"`shares_stimuli_with: [{self.teacher}]` (and keep participants from taking both)"
        )


def overlaps(studies: list[LoadedStudy]) -> list[Overlap]:
    """Every (teacher, tester) pair of studies of one asset run with pictures in common."""
    roles = {s.id: (taught(s), tested(s)) for s in studies}
    out = []
    for a in studies:
        for b in studies:
            if a.id == b.id or a.run.resolve() != b.run.resolve():
                continue
            shared = roles[a.id][0] & roles[b.id][1]
            if shared:
                out.append(Overlap(a.id, b.id, tuple(sorted(shared)), a.id in b.spec.shares_stimuli_with))
    return out
