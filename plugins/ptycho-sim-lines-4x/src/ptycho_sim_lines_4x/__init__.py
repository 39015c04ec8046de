"""SIM-LINES-4X: the four-scenario lines study (gridsize 1/2 × ideal/file probe) with a probe-scale
sweep, as a ``ptycho`` plugin (``ptycho sim-lines-4x``) and a Python API::

    from ptycho_sim_lines_4x import SimLines4xConfig, run_study

    result = run_study(SimLines4xConfig(epochs=10), "lines4x/")
    result.rows          # one dict per run, as in metrics.json
"""

from ptycho_sim_lines_4x.config import FULL_SETTINGS, SCENARIOS, SimLines4xConfig
from ptycho_sim_lines_4x.study import StudyResult, plan, run_study, scenario_config

__version__ = "0.1.0"
__all__ = ["FULL_SETTINGS", "SCENARIOS", "SimLines4xConfig", "StudyResult", "plan", "run_study", "scenario_config"]
