"""Every registered family on two processes equals one process (issue 22 §1).

The model list comes from the registry (built-in plugins, as in ``tests/test_crash_resume.py``,
whose ``TINY`` sizes are reused), so a new family is covered without editing this file. One
``torchrun`` launch (2 gloo processes, CPU) loops over the modes ``ddp``, ``fsdp`` and ``auto``
and, inside each, over every family: it evaluates the freshly built model on 13 samples
(uneven shards: 7 and 6), trains it one epoch on 24 samples with 6 per rank and step, and
evaluates again. A plain process does the same with batch 12, the same global batch.

What must hold, family by family:

- every rank ends with the same weights (the run is synchronised);
- a mode the family cannot use is refused with ebmkit's ``ConfigError`` naming the mode to
  use instead (``'explicit'``, what ``auto`` picks), the same on both ranks, and ``auto``
  works for every family;
- deterministic families (``DETERMINISTIC``: no random number is drawn in a training step)
  end with one process's weights within float tolerance;
- families whose step draws per-rank randomness by design (Langevin chains, replay buffers,
  augmented views, masks, latent noise, generator samples: each rank seeds ``seed + rank``)
  cannot equal one process; for them the property is that training moved the weights and
  kept them finite (and the ranks agree, above);
- ``evaluate`` on uneven shards gives the single-process figures for the initial weights
  (identical on every path), for every family whose metrics draw no random numbers, and
  for the trained weights of the deterministic families.

Run by hand: ``python tests/test_dist_families.py OUT`` is the one-process reference;
``torchrun --nproc-per-node 2 tests/test_dist_families.py OUT`` the distributed side.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
MODES = ("ddp", "fsdp", "auto")
SAMPLES, BATCH, EVAL_SAMPLES = 24, 6, 13
# EBMKIT_DIST_DEVICE=cuda (.ci/device-check, with one GPU per process): NCCL instead of gloo.
DEVICE = os.environ.get("EBMKIT_DIST_DEVICE", "cpu")
# Families whose training step draws no random number: two processes end where one does.
DETERMINISTIC = {"autoencoder", "autoencoder.contractive", "autoencoder.sparse", "kmeans",
                 "sparse.coding", "sparse.group", "sparse.lista", "sparse.drsae", "hopfield",
                 "hopfield.classical"}
# Families whose metrics draw random numbers (samples, masks, noise): evaluate differs by
# design between one and two processes.
RANDOM_METRICS = {"attention.transformer", "hopfield", "gan.dcgan", "gan.ebgan", "masked.lm", "masked.image",
                  "autoencoder.variational", "autoencoder.denoising", "neural.jem",
                  "neural.conv", "neural.mlp"}
# Families whose metric depends on how the samples are batched (SwAV's scores Sinkhorn codes
# per evaluation batch): one process's batch of 12 is two ranks' batches of 6.
RANDOM_METRICS |= {"ssl.swav"}
# Families whose metric is too slow for a test of seconds (a 300x300 grid): not evaluated.
NO_EVAL = {"neural.mlp"}


def _families() -> list[str]:
    from test_crash_resume import SKIP, builtin_models

    return [f for f in builtin_models() if f not in SKIP]


def _run_family(family: str, mode: str | None, batch: int, cache: dict[str, Any]) -> dict:
    import torch

    import ebmkit as ek
    from ebmkit.cli import parse_set
    from ebmkit.runs import data_defaults, recipe
    from test_crash_resume import TINY

    dname, _, _, opts = TINY[family]
    if dname not in cache:
        cache[dname] = ek.get_dataset(dname)
    full = cache[dname]
    data = full._replace(**{k: v[:SAMPLES] for k, v in full.tensors.items()})
    val = full._replace(**{k: v[SAMPLES:SAMPLES + EVAL_SAMPLES] for k, v in full.tensors.items()})
    entry = ek.plugins.get_entry("models", family)
    options = {**recipe(entry, dname).get("options", {}), **parse_set(opts)}
    config = {**data_defaults([o.name for o in entry.options()], data, options), **options}
    torch.manual_seed(0)
    net = ek.get_model(family, **config)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # grad_clip where the family trains by gradient: FSDP's clip returns a DTensor norm
    clip = 100.0 if any(p.requires_grad for p in net.parameters()) else None
    trainer = ek.Trainer(net, epochs=1, batch_size=batch, device=DEVICE, seed=0, progress=False,
                         grad_clip=clip, check_every=1000,
                         **({} if mode is None else {"distributed": mode}))
    from ebmkit.errors import EbmkitError

    first: dict[str, float] | None = {}
    if family not in NO_EVAL:
        try:
            first = trainer.evaluate(val)
        except EbmkitError:  # e.g. a Hopfield memory stores nothing before training
            first = None
    trainer.fit(data)
    last = {} if family in NO_EVAL else trainer.evaluate(val)
    from ebmkit.train import parallel

    weights = {k: parallel.whole(v) for k, v in trainer.model.state_dict().items()}  # every rank
    sums = {k: float(v.double().sum().cpu()) for k, v in weights.items()
            if torch.is_floating_point(v)}
    moved = any(not torch.equal(v, before[k]) for k, v in weights.items() if k in before)
    params = dict(trainer.model.named_parameters())  # (a queue's empty slots may be NaN)
    finite = all(math.isfinite(s) for k, s in sums.items() if k in params)
    return {"ok": True, "mode": trainer.mode, "sums": sums, "eval": first, "last": last,
            "moved": moved,
            "finite": finite}


def main(out: str, batch: int) -> None:
    """Run every family (and every mode when distributed); write ``out/<rank>.json``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    rank = int(os.environ.get("RANK", "0"))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    from ebmkit.errors import EbmkitError

    results: dict[str, dict[str, Any]] = {}
    cache: dict[str, Any] = {}
    for mode in (MODES if distributed else (None,)):
        for family in _families():
            t0 = time.perf_counter()
            try:
                res = _run_family(family, mode, batch, cache)
            except EbmkitError as exc:
                res = {"ok": False, "refused": f"{type(exc).__name__}: {exc}"}
            except Exception as exc:  # noqa: BLE001 - reported by the test, per family
                res = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                       "trace": traceback.format_exc()[-3000:]}
            res["s"] = time.perf_counter() - t0
            results[f"{mode or 'single'}/{family}"] = res
    Path(out, f"{rank}.json").write_text(json.dumps(results))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_every_family_on_two_processes_matches_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONWARNINGS="ignore")
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), __file__,
         str(tmp_path / "two"), str(BATCH)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    one = subprocess.run([sys.executable, __file__, str(tmp_path / "one"), str(2 * BATCH)],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stdout + one.stderr
    output, _ = two.communicate(timeout=900)
    assert two.returncode == 0, output[-5000:]

    single = json.loads((tmp_path / "one" / "0.json").read_text())
    ranks = [json.loads((tmp_path / "two" / f"{r}.json").read_text()) for r in (0, 1)]
    families = [k.split("/", 1)[1] for k in single]
    problems: list[str] = []
    for family in families:
        ref = single[f"single/{family}"]
        assert ref["ok"], f"{family} on one process: {ref}"
        for mode in MODES:
            key = f"{mode}/{family}"
            a, b = ranks[0][key], ranks[1][key]
            if "error" in a or "error" in b:
                problems.append(f"{key}: {a.get('error') or b.get('error')}\n"
                                f"{a.get('trace') or b.get('trace')}")
                continue
            if not a["ok"]:  # refused: clearly, on both ranks, and never under auto
                if mode == "auto" or a != {**b, "s": a["s"]} or "distributed='explicit'" \
                        not in a["refused"]:
                    problems.append(f"{key}: refused without naming the mode to use: {a}, {b}")
                continue
            if a["sums"] != b["sums"]:
                problems.append(f"{key}: the ranks disagree on the weights")
            if family in DETERMINISTIC:
                for name, s in ref["sums"].items():
                    if not math.isclose(a["sums"][name], s, rel_tol=1e-4, abs_tol=1e-4):
                        problems.append(f"{key}: {name} sums to {a['sums'][name]!r}, one "
                                        f"process {s!r}")
            elif not (a["moved"] and a["finite"]):
                problems.append(f"{key}: training did not move the weights or made them "
                                f"non-finite")
            if family in RANDOM_METRICS:
                continue
            pairs = [("eval", ref["eval"] or {}, a["eval"] or {})]  # the initial weights
            if family in DETERMINISTIC:  # and the trained ones, equal on both sides
                pairs.append(("last", ref["last"], a["last"]))
            for when, want, got in pairs:
                for name, v in want.items():
                    if not math.isclose(got[name], v, rel_tol=1e-4, abs_tol=1e-5):
                        problems.append(f"{key}: evaluate's {name} ({when}) {got[name]!r}, one "
                                        f"process {v!r}")
    assert not problems, "\n".join(problems)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
