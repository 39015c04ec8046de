"""The dose study (high vs low photon count × Poisson NLL vs MAE loss) as a ``ptycho`` plugin
(``ptycho dose``) and a Python API::

    from ptycho_dose import DoseConfig, run_study

    result = run_study(DoseConfig(epochs=10), "dose/")
    result.rows          # one dict per arm, as in metrics.json
"""

from ptycho_dose.config import FULL_SETTINGS, DoseConfig
from ptycho_dose.study import StudyResult, arm_config, plan, run_study

__version__ = "0.1.0"
__all__ = ["FULL_SETTINGS", "DoseConfig", "StudyResult", "arm_config", "plan", "run_study"]
