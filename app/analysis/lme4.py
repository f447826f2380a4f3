"""R's lme4, the field's reference, through a subprocess: `Rscript glmer.R data.csv`.

No R package is needed beyond lme4 (Debian: r-cran-lme4). Every data set of one call is fitted in
one R process, so a benchmark of hundreds of fits pays R's start-up (about a second) once.
"""

from __future__ import annotations

import csv
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).with_name("glmer.R")
TIMEOUT_S = 600


class RUnavailable(RuntimeError):
    """Rscript or lme4 is missing, or R failed: the message says which and what to do."""


@dataclass
class RFit:
    names: list[str] = field(default_factory=list)  # R's names: (Intercept), condition<level>, ...
    beta: list[float] = field(default_factory=list)
    se: list[float] = field(default_factory=list)
    vcov: dict[tuple[int, int], float] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    loglik: float = float("nan")
    singular: bool = False
    converged: bool = True  # False: the default optimiser and bobyqa both warned
    notes: str = ""
    failed: str = ""

    def vcov_matrix(self) -> np.ndarray:
        k = len(self.beta)
        return np.array([[self.vcov[(a + 1, b + 1)] for b in range(k)] for a in range(k)])


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(True, "R 4.2.2, lme4 1.1.31") when Rscript runs and loads lme4; else (False, why)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return False, "Rscript is not on PATH (install R and lme4: apt-get install r-base-core r-cran-lme4)"
    try:
        out = subprocess.run(
            [
                rscript,
                "-e",
                "suppressPackageStartupMessages(library(lme4)); cat(R.version$major, R.version$minor, "
                'as.character(packageVersion("lme4")))',
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"Rscript did not run ({exc})"
    if out.returncode != 0:
        return False, "R cannot load lme4 (install it: apt-get install r-cran-lme4, or install.packages('lme4'))"
    major, minor, lme4 = out.stdout.split()
    return True, f"R {major}.{minor}, lme4 {lme4}"


def fit_many(rows: list[tuple[str, str, int, str, str, str]]) -> tuple[dict[str, RFit], dict[str, str]]:
    """Fit every data set in `rows` (dataset, reference condition, y, condition, participant, item).

    Returns the fits by data set and the versions R reported."""
    ok, why = available()
    if not ok:
        raise RUnavailable(why)
    with tempfile.TemporaryDirectory(prefix="fieldmark-r-") as tmp:
        data = Path(tmp) / "data.csv"
        with data.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["dataset", "reference", "y", "condition", "participant", "item"])
            w.writerows(rows)
        try:
            out = subprocess.run(
                ["Rscript", "--vanilla", str(SCRIPT), str(data)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise RUnavailable(f"R took over {TIMEOUT_S} s to fit the model") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise RUnavailable(f"R failed: {last}")
    fits: dict[str, RFit] = {}
    versions: dict[str, str] = {}
    for line in out.stdout.splitlines():
        kind, *rest = line.split("\t")
        if kind == "version":
            versions[rest[0]] = rest[1]
            continue
        fit = fits.setdefault(rest[0], RFit())
        if kind == "fixef":
            fit.names.append(rest[1])
            fit.beta.append(float(rest[2]))
            fit.se.append(float(rest[3]))
        elif kind == "vcov":
            fit.vcov[(int(rest[1]), int(rest[2]))] = float(rest[3])
        elif kind == "sd":
            fit.sd[rest[1]] = float(rest[2])
        elif kind == "info" and rest[1] == "loglik":
            fit.loglik = float(rest[2])
        elif kind == "info" and rest[1] == "singular":
            fit.singular = rest[2] == "TRUE"
        elif kind == "info" and rest[1] == "converged":
            fit.converged = rest[2] == "TRUE"
        elif kind == "info" and rest[1] == "notes":
            fit.notes = rest[2]
        elif kind == "failed":
            fit.failed = rest[1]
    return fits, versions
