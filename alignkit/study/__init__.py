"""``alignkit study``: the research question end to end (train every variant x seed, score,
evaluate zero-shot, compare across seeds, report). See :mod:`alignkit.study.pipeline`."""
from alignkit.study.pipeline import StudyConfig, load_study_config, run_study

__all__ = ["StudyConfig", "load_study_config", "run_study"]
