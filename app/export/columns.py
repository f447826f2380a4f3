"""Every column of every export file, declared once; the codebook is generated from them.

trials.csv: the trial's context, then the fields of the study's trial rows (declared by the
step types and tasks in app/steps/), then the exclusion flags. participants.csv: the
participant's own columns, one column per field of each participant-level step
(questionnaires, attention checks, consent), and with --raw-ids the Prolific ids.
"""

from __future__ import annotations

from typing import Any

from app.analysis.rules import step_columns, trial_fields
from app.models import ORIGINS, Participant
from app.steps.base import Recorded
from app.studies.loader import LoadedStudy

ORIGIN_MEANING = (
    "who took part: real (a participant), pilot (a researcher's preview), bot (a simulated participant); "
    "exports hold real participants only unless made with --all-origins (or ?origins=all)"
)
TRIAL_CONTEXT = (
    Recorded("study_id", "string", "the study's id"),
    Recorded("study_hash", "string", "SHA-256 of the exact study file the participant took (see study.yaml)"),
    Recorded("participant", "string", "pseudonym of the participant (keyed hash; see the note on ids)"),
    Recorded("condition", "string", "the participant's condition", "the study's condition ids"),
    Recorded("origin", "string", ORIGIN_MEANING, ", ".join(ORIGINS)),
)
FLAGS = (
    Recorded("excluded", "boolean", "any exclusion rule of the study applies to this participant", "true, false"),
    Recorded("excluded_attention", "boolean", "failed an attention check (rule: exclusions.failed_attention)"),
    Recorded(
        "excluded_too_fast",
        "boolean",
        "median response time below exclusions.min_median_rt_ms, on the client's clock (rt_ms) or the server's "
        "(server_rt_ms: works without JavaScript)",
    ),
    Recorded("excluded_screened_out", "boolean", "screened out by a questionnaire or attention rule"),
)
# A column with `sql` is read from the participants table; the others the exporter computes.
PARTICIPANT = (
    Recorded("participant", "string", "pseudonym (as in trials.csv)"),
    Recorded(
        "condition",
        "string",
        "assigned condition; empty if the participant left before assignment",
        sql=Participant.condition,
    ),
    Recorded(
        "status",
        "string",
        "where the participant ended",
        "started, active, completed, screened_out, declined",
        sql=Participant.status,
    ),
    Recorded("origin", "string", ORIGIN_MEANING, ", ".join(ORIGINS), sql=Participant.origin),
    Recorded("item_set", "integer", "which of the blocks' item sets they saw (Latin square)", sql=Participant.item_set),
    Recorded(
        "manifest_sha256",
        "string",
        "SHA-256 of the asset run's manifest they were shown (snapshot.json holds the manifest); empty if not recorded",
        sql=Participant.manifest_hash,
    ),
    Recorded(
        "device_class",
        "string",
        "the device they consented on (pointer and screen; the user agent without JavaScript)",
        "desktop, tablet, phone, or empty",
        sql=Participant.device_class,
    ),
    Recorded(
        "viewport_w",
        "integer",
        "browser window width at consent (CSS px; empty without JavaScript)",
        sql=Participant.viewport_w,
    ),
    Recorded("viewport_h", "integer", "browser window height at consent (CSS px)", sql=Participant.viewport_h),
    Recorded("screen_w", "integer", "screen width at consent (CSS px)", sql=Participant.screen_w),
    Recorded("screen_h", "integer", "screen height at consent (CSS px)", sql=Participant.screen_h),
    Recorded("started_at", "datetime", "when they arrived (UTC)", sql=Participant.created_at),
    Recorded("assigned_at", "datetime", "when they were assigned a condition (UTC)", sql=Participant.assigned_at),
    Recorded("completed_at", "datetime", "when they finished (UTC)", sql=Participant.completed_at),
    Recorded("end_reason", "string", "why they stopped early, if they did", sql=Participant.end_reason),
    Recorded("trials", "integer", "trials answered"),
    Recorded("trials_correct", "integer", "trials answered correctly"),
    Recorded("accuracy", "number", "trials_correct / trials", "0 to 1"),
    Recorded("median_rt_ms", "number", "median response time over their trials (client clock, rt_ms)"),
    Recorded("median_server_rt_ms", "number", "median server-side response time over their trials (server_rt_ms)"),
    Recorded("excluded", "boolean", "any exclusion rule applies", "true, false"),
    Recorded("excluded_attention", "boolean", "failed an attention check"),
    Recorded("excluded_too_fast", "boolean", "median response time (client or server clock) below the study's minimum"),
    Recorded("excluded_screened_out", "boolean", "screened out"),
)
RAW_IDS = (
    Recorded("prolific_pid", "string", "raw PROLIFIC_PID (only with --raw-ids)", sql=Participant.external_pid),
    Recorded("prolific_study_id", "string", "raw STUDY_ID (only with --raw-ids)", sql=Participant.external_study),
    Recorded("prolific_session_id", "string", "raw SESSION_ID (only with --raw-ids)", sql=Participant.external_session),
)

# prolific-ids.csv: the raw ids, for approving, rejecting and paying bonuses on Prolific; the
# pseudonym links them to the other files. Personal data: only on the dashboard, each download logged.
PROLIFIC_IDS = (
    Recorded("participant", "string", "pseudonym, as in trials.csv and participants.csv"),
    Recorded("prolific_pid", "string", "raw PROLIFIC_PID"),
    Recorded("prolific_study_id", "string", "raw STUDY_ID"),
    Recorded("prolific_session_id", "string", "raw SESSION_ID"),
    Recorded(
        "status",
        "string",
        "where the participant is, or ended (abandoned: idle past the study's timeout)",
        "started, active, completed, abandoned, screened_out, declined",
    ),
    Recorded("completion_code", "string", "the Prolific code the study gave them; empty if none yet"),
    Recorded("started_at", "datetime", "when they arrived (UTC)"),
    Recorded("completed_at", "datetime", "when they finished (UTC)"),
)


def trial_columns(study: LoadedStudy) -> list[Recorded]:
    return [*TRIAL_CONTEXT, *trial_fields(study), *FLAGS]


def participant_columns(study: LoadedStudy, raw_ids: bool) -> list[Recorded]:
    return [*PARTICIPANT, *step_columns(study), *(RAW_IDS if raw_ids else ())]


CLASSES = (
    Recorded("class_id", "integer", "CUB class id, as in true_class, model_prediction and class-id responses"),
    Recorded("species", "string", "the species' name"),
)
ANALYSIS_FORMULA_R = (
    "glmer(correct ~ condition + (1 | participant) + (1 | item_id), family = binomial, "
    "data = subset(trials, !excluded & !(phase %in% c('learning', 'practice'))))"
)


def codebook(study: LoadedStudy, raw_ids: bool) -> dict[str, Any]:
    ids_note = (
        "participant ids are raw Prolific ids (exported with --raw-ids)"
        if raw_ids
        else "`participant` is a pseudonym: HMAC-SHA256 of the study id and the Prolific id (or the internal "
        "id) keyed with the server's secret, first 16 hex digits; raw ids are not exported"
    )
    return {
        "study": study.id,
        "version": study.spec.version,
        "study_hash": study.content_hash,
        "assets": {
            "run": study.spec.assets,
            "manifest_sha256": study.manifest_hash,
            "model_hash": study.manifest.provenance.model_hash,
        },
        "ids": ids_note,
        "preregistration": study.spec.preregistration,
        "trials.csv": [c.entry() for c in trial_columns(study)],
        "participants.csv": [c.entry() for c in participant_columns(study, raw_ids)],
        "classes.csv": [c.entry() for c in CLASSES],
        "prolific-ids.csv": [c.entry() for c in PROLIFIC_IDS],
        "cells": "every CSV cell that would start with =, +, -, @, a tab or a carriage return is written with a "
        "leading apostrophe, so that a spreadsheet shows it as text instead of running it as a formula",
        "analysis_formula_r": ANALYSIS_FORMULA_R,
        "analysis_method": _method(),
    }


def _method() -> str:
    from app.analysis.inference import METHOD  # the analysis's own words; imported only for a codebook

    return METHOD


def codebook_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Codebook: {doc['study']} (version {doc['version']})",
        "",
        f"Study file hash: `{doc['study_hash']}` (the exact file is `study.yaml`).",
        "",
        f"Asset run `{doc['assets']['run']}`: manifest SHA-256 `{doc['assets']['manifest_sha256']}`, model "
        f"`{doc['assets']['model_hash']}` (the whole manifest is in `snapshot.json`).",
        "",
        f"Ids: {doc['ids']}.",
        "",
    ]
    if doc.get("preregistration"):
        lines += [f"Preregistration: {doc['preregistration']}", ""]
    for table in ("trials.csv", "participants.csv", "classes.csv", "prolific-ids.csv"):
        lines += [f"## {table}", "", "| column | type | meaning | values |", "|---|---|---|---|"]
        lines += [f"| `{c['name']}` | {c['type']} | {c['meaning']} | {c['values']} |" for c in doc[table]]
        lines.append("")
    lines += [
        "## Re-running the analysis in R",
        "",
        "```r",
        "library(lme4)",
        'trials <- read.csv("trials.csv")',
        f"model <- {doc['analysis_formula_r']}",
        "summary(model)",
        "```",
        "",
        f"Fieldmark's own analysis fits this model and tests it so: {doc['analysis_method']}. glmer's "
        "summary() prints Wald z tests instead, which reject a true null somewhat too often with few "
        "participants per condition (docs/benchmarks.md in Fieldmark's repository).",
        "",
    ]
    return "\n".join(lines)
