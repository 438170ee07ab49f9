"""Test-session set-up shared by the unit tests and the notebook runs (nbval).

Kernels started by nbval inherit this environment, so notebooks run quiet and offline too.
"""

import os
import tempfile

_QUIET_OFFLINE = {
    "TQDM_DISABLE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "MPLBACKEND": "Agg",
}
for _name, _value in _QUIET_OFFLINE.items():
    os.environ.setdefault(_name, _value)

# Surprise would otherwise create ~/.surprise_data; notebooks write metrics and figures here.
_scratch = tempfile.mkdtemp(prefix="textinterest-tests-")
os.environ.setdefault("SURPRISE_DATA_FOLDER", os.path.join(_scratch, "surprise"))
os.environ.setdefault("TEXTINTEREST_METRICS_DIR", os.path.join(_scratch, "metrics"))
os.environ.setdefault("TEXTINTEREST_FIGURES_DIR", os.path.join(_scratch, "figures"))
