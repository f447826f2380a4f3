"""Step types and trial tasks: one home each (base.py says what every one declares).

Importing this package registers the built-in ones. A new step type is a module here and one
line below (and its template, and a row in docs/studies.md); a new task is a `Task` subclass
passed to `register_task`.
"""

from app.steps.attention import AttentionStep
from app.steps.consent import ConsentStep
from app.steps.plain import BreakStep, CompletionStep, InstructionsStep
from app.steps.questionnaire import QuestionnaireStep
from app.steps.registry import STEP_TYPES, TASKS, register_step, register_task, step_type, trial_fields
from app.steps.tasks import BUILT_IN
from app.steps.trials import TrialsStep

for _kind in (
    ConsentStep(),
    InstructionsStep(),
    QuestionnaireStep(),
    TrialsStep(),
    AttentionStep(),
    BreakStep(),
    CompletionStep(),
):
    register_step(_kind)
for _task in BUILT_IN:
    register_task(_task)

__all__ = ["STEP_TYPES", "TASKS", "register_step", "register_task", "step_type", "trial_fields"]
