"""``alignkit study``: the research question end to end (SPEC §1).

* :mod:`~alignkit.study.config`: the TOML config (:class:`StudyConfig`, validated up front)
* :mod:`~alignkit.study.run`: train every variant x seed, score, evaluate zero-shot (resumable)
* :mod:`~alignkit.study.analysis`: variants vs baselines paired by seed; alignment vs accuracy
* :mod:`~alignkit.study.plots`, :mod:`~alignkit.study.report`: figures and report.md
* :mod:`~alignkit.study.reanalysis`: ``--reanalyse`` a finished study from its files
"""
from alignkit.study.config import StudyConfig, load_study_config
from alignkit.study.run import run_study

__all__ = ["StudyConfig", "load_study_config", "run_study"]
