# Fit the crossed mixed model of nasseg.ablation.stats with lme4/lmerTest (REML, Satterthwaite df).
#
# Usage: Rscript benchmarks/lmer_fit.R IN.csv OUT.csv
#   IN.csv: columns table, seed, case, d (paired differences variant - reference; one table per
#           value of `table`).
#   OUT.csv: per table: estimate, se, df, p (lmerTest's Satterthwaite t-test of the intercept),
#            var_seed, var_case, var_res, loglik (REML log-likelihood), singular (boundary fit).
# Model: lmer(d ~ 1 + (1 | seed) + (1 | case), REML = TRUE); for a two-variant table this is the
# variant effect of lmer(Dice ~ variant + (1|seed) + (1|case) + (1|seed:case) + (1|seed:variant)
# + (1|case:variant)), whose random effects shared by both variants cancel in the differences.
suppressMessages({library(lme4); library(lmerTest)})
args <- commandArgs(trailingOnly = TRUE)
x <- read.csv(args[1], colClasses = c(table = "character", seed = "character", case = "character"))
rows <- list()
for (name in unique(x$table)) {
  sub <- x[x$table == name, ]
  fit <- lmer(d ~ 1 + (1 | seed) + (1 | case), data = sub, REML = TRUE,
              control = lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
  co <- summary(fit)$coefficients
  vc <- as.data.frame(VarCorr(fit))
  rows[[name]] <- data.frame(table = name, estimate = co[1, "Estimate"], se = co[1, "Std. Error"],
                             df = co[1, "df"], p = co[1, "Pr(>|t|)"],
                             var_seed = vc$vcov[vc$grp == "seed"], var_case = vc$vcov[vc$grp == "case"],
                             var_res = vc$vcov[vc$grp == "Residual"],
                             loglik = as.numeric(logLik(fit, REML = TRUE)), singular = isSingular(fit))
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
