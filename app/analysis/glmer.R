# Fieldmark's bridge to lme4: fit glmer(y ~ condition + (1 | participant) + (1 | item),
# family = binomial) -- lme4's defaults, Laplace (nAGQ = 1) -- on every data set of a CSV file and
# print tab-separated records for app/analysis/lme4.py to read. Base R and lme4 only.
#
#   Rscript glmer.R data.csv
#
# data.csv: columns dataset, reference (the reference condition), y (0/1), condition, participant, item.
# When the default optimiser warns that the fit did not converge, the model is refitted with
# bobyqa (lme4's own advice, ?convergence); the notes say so.
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lme4))
cat("version\tR\t", R.version$major, ".", R.version$minor, "\n", sep = "")
cat("version\tlme4\t", as.character(packageVersion("lme4")), "\n", sep = "")
data <- read.csv(args[1], colClasses = c("character", "character", "integer", "character", "character", "character"))
clean <- function(x) gsub("[\t\n]+", " ", paste(x, collapse = "; "))

fit_once <- function(d, control) {
  notes <- character(0)
  fit <- withCallingHandlers(
    tryCatch(
      glmer(y ~ condition + (1 | participant) + (1 | item), data = d, family = binomial, control = control),
      error = function(e) { notes <<- c(notes, conditionMessage(e)); NULL }
    ),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
  )
  list(fit = fit, notes = notes, failed = is.null(fit) || any(grepl("converge|unidentifiable", notes)))
}

for (ds in unique(data$dataset)) {
  d <- data[data$dataset == ds, ]
  d$condition <- relevel(factor(d$condition), ref = d$reference[1])
  d$participant <- factor(d$participant)
  d$item <- factor(d$item)
  first <- fit_once(d, glmerControl())
  result <- first
  notes <- first$notes
  if (first$failed) {
    second <- fit_once(d, glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
    if (!is.null(second$fit) && (!second$failed || is.null(first$fit))) {
      result <- second
      notes <- c(paste("default optimiser:", clean(first$notes)), "refitted with bobyqa", second$notes)
    } else {
      notes <- c(notes, paste("a refit with bobyqa did not help:", clean(second$notes)))
    }
  }
  fit <- result$fit
  if (is.null(fit)) {
    cat("failed\t", ds, "\t", clean(notes), "\n", sep = "")
    next
  }
  beta <- fixef(fit)
  v <- as.matrix(vcov(fit))
  se <- sqrt(diag(v))
  for (k in seq_along(beta)) cat("fixef\t", ds, "\t", names(beta)[k], "\t", sprintf("%.10g", beta[k]), "\t", sprintf("%.10g", se[k]), "\n", sep = "")
  for (a in seq_len(nrow(v))) for (b in seq_len(ncol(v))) cat("vcov\t", ds, "\t", a, "\t", b, "\t", sprintf("%.10g", v[a, b]), "\n", sep = "")
  cat("sd\t", ds, "\tparticipant\t", sprintf("%.10g", attr(VarCorr(fit)$participant, "stddev")), "\n", sep = "")
  cat("sd\t", ds, "\titem\t", sprintf("%.10g", attr(VarCorr(fit)$item, "stddev")), "\n", sep = "")
  cat("info\t", ds, "\tloglik\t", sprintf("%.10g", as.numeric(logLik(fit))), "\n", sep = "")
  cat("info\t", ds, "\tsingular\t", isSingular(fit), "\n", sep = "")
  cat("info\t", ds, "\tconverged\t", !result$failed, "\n", sep = "")
  if (length(notes)) cat("info\t", ds, "\tnotes\t", clean(notes), "\n", sep = "")
}
