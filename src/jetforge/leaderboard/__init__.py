"""The cross-method comparison no single paper makes: every pre-training objective and
augmentation family on one backbone, one dataset and one protocol.

Each of the five papers (RS3L, Harris et al. arXiv:2403.07066; Rieck et al.
arXiv:2503.11632; MPM, Golling et al. arXiv:2401.13537; jBOT, Tsoi & Rankin
arXiv:2601.11719; JP-JEPA, Letellier et al. arXiv:2606.14813) shows its method beating a
baseline on its own data, backbone and protocol. The config block ``leaderboard`` puts
them side by side on the same jets (one re-simulated dataset carrying every pair family),
the same backbone size and the same pre-training budget (optimizer steps x batch):

* :mod:`jetforge.leaderboard.plan` -- entries, the experiment block each one runs as,
  paths and the config checks (run before any job);
* :mod:`jetforge.leaderboard.protocol` -- one job per (entry, pre-training seed):
  pre-train, then every evaluation in-process through the evaluation library (probes,
  fine-tuning at three labelled sizes, robustness, anomaly AUC, effective rank, cost);
* :mod:`jetforge.leaderboard.aggregate` -- mean +- std over seeds, rank per metric and
  which differences are significant (Welch t at 95 %, :mod:`jetforge.reporting.claims`);
* :mod:`jetforge.leaderboard.report` -- ``results/tables/leaderboard.{csv,md,tex}`` and
  ``results/figures/leaderboard/``.
"""
