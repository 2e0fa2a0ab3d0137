"""Start-up cost: ``import ebmkit`` and ``ebmkit models`` against ``import torch``.

``import ebmkit`` is lazy and imports no torch; the honest comparison is therefore also made
with the whole core loaded (``ebmkit.model`` and ``ebmkit.data``, which import torch).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .harness import Result, interleaved_times, run_command, run_python


def run(smoke: bool) -> list[Result]:
    repeats = 1 if smoke else 9
    quiet = {"EBMKIT_DISABLE_PLUGINS": "broken", "PYTHONWARNINGS": "ignore"}
    torch_import = run_python("import torch")
    lazy = run_python("import ebmkit")
    full = run_python("import ebmkit, ebmkit.model, ebmkit.data, ebmkit.plugins; "
                      "ebmkit.list_models()", env=quiet)
    exe = shutil.which("ebmkit") or str(Path(sys.executable).with_name("ebmkit"))
    models = run_command([exe, "models"], env=quiet)
    t_torch, t_lazy, t_full, t_models = interleaved_times([torch_import, lazy, full, models],
                                                          repeats)
    note = f"fresh interpreter each run, median of {repeats}"
    return [
        Result("import ebmkit", t_lazy, t_torch, "import torch", 1.15, notes=note),
        Result("import ebmkit + core (torch)", t_full, t_torch, "import torch", 1.15, notes=note),
        Result("ebmkit models (wall)", t_models, None, "—", 2.0,
               notes="the `ebmkit models` console script, start to exit"),
    ]
