"""Pre-training objectives, one module each, behind a registry (``base.OBJECTIVES``).

Importing this package registers them all.
"""

from fashionvlp.objectives import itc, itm, lm, mlm, mpfc, mvc, pac  # noqa: F401
from fashionvlp.objectives.base import OBJECTIVES, Objective, build_objectives  # noqa: F401
