"""mmrouter: route each instruction to the candidate model most likely to answer it well (Model-SAT).

    router = mmrouter.load_router("runs/default/router")
    decision = mmrouter.route(text="Solve x^2 = 4", router=router)
    decision.model, decision.scores
"""

from __future__ import annotations

import os

# Nothing may be fetched from a hub at run time: set before transformers, datasets or lmms_eval are imported.
for _variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_variable, "1")

from .routing import load_router, route  # noqa: E402

__all__ = ["load_router", "route"]
__version__ = "0.1.0"
