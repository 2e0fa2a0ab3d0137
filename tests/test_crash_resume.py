"""Crash-exact resume: `ebmkit train` killed (SIGKILL) at several moments and resumed ends
with the same weights, bit for bit, as a run that was never interrupted — for every model that
the built-in plugins register, with its default strategy.

The list of models comes from the registry (``ek.list_models()``, built-in plugins only), so a
new family is covered without editing this file: ``TINY`` gives most of them small sizes, and a
model missing there trains 3 epochs of its ``demo=`` recipe's data, batch size and options.
``SKIP`` names, with the reason, the models that ``ebmkit train`` cannot train at all; a test
checks that each of them indeed refuses, so the list cannot hide a trainable model.

One helper process imports torch and ebmkit once and forks every `ebmkit train` from there
(a fork starts in milliseconds, a fresh interpreter in seconds). For each family it trains
an uninterrupted reference, then a run that it kills:

1. in the middle of the second epoch (after the first checkpoint);
2. while a checkpoint is being written (as soon as a commit's temporary file appears;
   if none is seen in time, mid-epoch instead);
3. shortly after start-up (before the resumed run has finished an epoch);

resuming each time with `--resume` (or starting over when no checkpoint was committed yet),
and finally resumes it to the end. The final ``model.safetensors`` must equal the
reference's tensor for tensor, byte for byte. ``WITH_CALLBACKS`` adds runs with callbacks
(EarlyStopping, BestCheckpoint, a CSV logger), whose state is checkpointed too: their
``best.safetensors`` must match as well.

Run by hand: ``python tests/test_crash_resume.py gan.dcgan kmeans`` prints the JSON report.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# family -> (data, epochs, batch size, --set options): tiny sizes, the family's own strategy
_SSL = ["image_shape=[1,8,8]", "channels=[4,8]", "hidden=16", "rep_dim=8", "proj_dim=8",
        "proj_hidden=16"]
TINY: dict[str, tuple[str, int, int, list[str]]] = {
    "autoencoder": ("digits", 3, 256, ["hidden=16", "code=4"]),
    "autoencoder.denoising": ("digits", 3, 256, ["hidden=16", "code=4"]),
    "autoencoder.sparse": ("digits", 3, 256, ["hidden=16", "code=8"]),
    "autoencoder.contractive": ("digits", 3, 256, ["hidden=16", "code=4"]),
    "autoencoder.variational": ("digits", 3, 256, ["hidden=16", "code=4", "iw_samples=4"]),
    "kmeans": ("digits", 3, 256, ["k=4"]),
    "sparse.coding": ("digits", 3, 256, ["atoms=16", "steps=10"]),
    "sparse.group": ("digits", 3, 256, ["atoms=16", "steps=10", "group_size=4"]),
    "sparse.lista": ("digits", 3, 256, ["atoms=16", "layers=2", "fista_steps=20"]),
    "sparse.drsae": ("digits", 3, 256, ["atoms=16", "layers=2"]),
    "neural.mlp": ("rings", 3, 256, ["hidden=16", "langevin_steps=5", "buffer_size=512"]),
    "neural.conv": ("digits", 3, 256, ["channels=4", "langevin_steps=5"]),
    "neural.jem": ("digits", 3, 256, ["channels=4", "langevin_steps=3"]),
    "gan.dcgan": ("digits", 3, 256, ["latent_dim=4", "g_width=8", "d_width=8",
                                     "eval_samples=100"]),
    "gan.ebgan": ("digits", 3, 256, ["latent_dim=4", "g_width=8", "d_width=8", "code_dim=4",
                                     "eval_samples=100"]),
    "masked.lm": ("text", 3, 512, ["block_size=64", "d_model=16", "n_head=2", "n_layer=1"]),
    "masked.image": ("digits", 3, 256, ["d_model=16", "n_head=2", "n_layer=1"]),
    "hopfield": ("digits", 3, 256, ["normalize=true", "beta=64.0"]),
    "hopfield.classical": ("digits", 3, 256, []),
    "attention.transformer": ("digits", 3, 256, ["dim=16", "heads=2", "head_dim=8",
                                                 "memories=16", "steps=2",
                                                 "decoder_hidden=16"]),
    "ssl.simclr": ("digits", 3, 256, _SSL),
    "ssl.moco": ("digits", 3, 256, [*_SSL, "queue=256"]),
    "ssl.pirl": ("digits", 3, 256, [*_SSL, "bank=256"]),
    "ssl.swav": ("digits", 3, 256, [*_SSL, "prototypes=8", "freeze_prototypes=8"]),
    "ssl.byol": ("digits", 3, 256, [*_SSL, "pred_hidden=16"]),
    "ssl.barlow": ("digits", 3, 256, _SSL),
    "ssl.vicreg": ("digits", 3, 256, _SSL),
}

# Registered models that `ebmkit train` cannot train (test_skipped_models_cannot_be_trained
# checks that they refuse), with the reason.
SKIP: dict[str, str] = {
    "worldmodels": "not trained by ek.Trainer: V, M and C train in their own pipeline "
                   "(`ebmkit worldmodels`); its default_strategy() raises ConfigError",
}

EPOCHS = 3  # for a model missing from TINY

# Runs with callbacks, killed and resumed the same way: "family+tag" -> extra `ebmkit train`
# arguments. EarlyStopping's wait and best value and BestCheckpoint's best live in
# trainer.pt; the resumed run must also keep the same best.safetensors. The patience is
# long enough that the run goes to its last epoch.
WITH_CALLBACKS: dict[str, list[str]] = {
    "neural.mlp+callbacks": ["--callback", "early_stopping", "--set-callback", "monitor=e_pos",
                             "--set-callback", "patience=5", "--callback", "best_checkpoint",
                             "--set-callback", "monitor=val_free_energy", "--logger", "csv"],
}


def base(family: str) -> str:
    """The registered model of a ``family`` or ``family+tag`` entry."""
    return family.split("+")[0]


def builtin_models() -> list[str]:
    """Every model that the built-in plugins register (installed plugins are left out)."""
    import ebmkit as ek

    builtin = {p.name for p in ek.plugins.get_plugins() if p.builtin}
    return sorted(e.name for e in ek.plugins.list_entries("models") if e.plugin in builtin)


def recipe(family: str) -> tuple[str, int, int, list[str]]:
    """(data, epochs, batch size, --set options): ``TINY``'s, or the demo recipe's data and
    batch size (`ebmkit train` adds the recipe's options itself)."""
    if base(family) in TINY:
        return TINY[base(family)]
    import ebmkit as ek

    demo = ek.plugins.get_entry("models", base(family)).demo or {}
    return demo.get("data", "digits"), EPOCHS, int(demo.get("batch_size", 256)), []


CHILD_TIMEOUT_S = 300.0


# ------------------------------------------------------------------- the helper process
def _argv(family: str, out: Path, resume: bool) -> list[str]:
    data, epochs, batch, options = recipe(family)
    argv = ["train", base(family), "--data", data, "--epochs", str(epochs), "--batch-size",
            str(batch), "--out", str(out), "--no-plots", "--device", "cpu"]
    for option in options:
        argv += ["--set", option]
    return argv + WITH_CALLBACKS.get(family, []) + (["--resume"] if resume else [])


def _fork_train(argv: list[str], log: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: `ebmkit train`, its output to the log
        code = 99
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            from ebmkit.cli import main

            code = main(argv) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child reports and exits, whatever happened
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _epochs_done(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def _committing(out: Path) -> bool:
    try:
        return any(p.name.endswith(".tmp") for p in out.iterdir())
    except OSError:
        return False


def _run(argv: list[str], log: Path, kill_when: Any = None) -> tuple[str, float]:
    """Fork `ebmkit train argv`; SIGKILL it once ``kill_when(elapsed)`` is true.

    Returns ``("killed" | "exit N", elapsed seconds)``.
    """
    start = time.perf_counter()
    pid = _fork_train(argv, log)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.perf_counter() - start
        if done:
            return f"exit {os.waitstatus_to_exitcode(status)}", elapsed
        if elapsed > CHILD_TIMEOUT_S or (kill_when is not None and kill_when(elapsed)):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return ("killed" if elapsed <= CHILD_TIMEOUT_S else "timed out"), elapsed
        time.sleep(0.005)


def _weights(path: Path) -> dict[str, bytes]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).numpy().tobytes() for k in f.keys()}  # noqa: SIM118


def crash_and_resume(family: str, root: Path) -> dict[str, Any]:
    """The reference run, the killed-and-resumed run, and how their weights compare."""
    ref, crash, log = root / family / "ref", root / family / "crash", root / f"{family}.log"
    outcome, _ = _run(_argv(family, ref, False), log)
    if outcome != "exit 0":
        return {"family": family, "error": f"reference run: {outcome}", "log": str(log)}
    rng = random.Random(family)
    records = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    epoch_s = sum(r["time_s"] for r in records) / len(records)  # training only, no start-up
    marks: dict[str, float] = {}

    def mid_epoch_2(t: float) -> bool:  # a random point of the second epoch
        if "kill" not in marks and _epochs_done(crash) >= 1:
            marks["first"] = t
            marks["kill"] = t + rng.uniform(0.1, 0.9) * epoch_s
        return "kill" in marks and t > marks["kill"]

    def in_a_commit(t: float) -> bool:  # or, when no temporary file was seen, just after
        return _committing(crash) or _epochs_done(crash) > marks["n"]

    def soon_after_start(t: float) -> bool:
        return t > marks["soon"]

    kills = []
    for what, when in (("mid-epoch 2", mid_epoch_2), ("during a commit", in_a_commit),
                       ("soon after start", soon_after_start)):
        marks["n"] = _epochs_done(crash)
        marks["soon"] = rng.uniform(0.1, 0.6) * marks.get("first", 1.0)
        resume = (crash / "trainer.pt").is_file()
        outcome, _ = _run(_argv(family, crash, resume), log, when)
        kills.append({"moment": what, "resumed": resume, "outcome": outcome,
                      "epochs_before": marks["n"], "epochs_after": _epochs_done(crash)})
    resume = (crash / "trainer.pt").is_file()
    outcome, _ = _run(_argv(family, crash, resume), log)
    if outcome != "exit 0":
        return {"family": family, "error": f"final resume: {outcome}", "kills": kills,
                "log": str(log)}
    a, b = _weights(ref / "model.safetensors"), _weights(crash / "model.safetensors")
    differ = sorted(k for k in a if a[k] != b.get(k)) + sorted(set(b) - set(a))
    if (ref / "best.safetensors").is_file():  # BestCheckpoint's model, too
        a, b = _weights(ref / "best.safetensors"), _weights(crash / "best.safetensors")
        differ += [f"best:{k}" for k in sorted(a) if a[k] != b.get(k)]
    return {"family": family, "exact": not differ, "differ": differ, "kills": kills,
            "final_resumed": resume, "epochs": _epochs_done(crash), "epoch_s": epoch_s}


def warm(family: str) -> None:
    """Import and load, once in the helper, what every forked run of ``family`` needs: the
    model's code, its data (cached in-process), its metrics (torchmetrics, matplotlib) and
    the optimizer (torch._dynamo). Each fork then starts in well under a second instead of
    re-importing for seconds. Best effort: a failure here shows up in the runs themselves."""
    import torch

    import ebmkit as ek
    from ebmkit.cli import parse_set
    from ebmkit.runs import data_defaults, recipe as plan_of

    entry = ek.plugins.get_entry("models", base(family))
    data, _, _, options = recipe(family)
    try:
        train = ek.get_dataset(data)
        if "split" in {o.name for o in ek.plugins.get_entry("datasets", data).options()}:
            ek.get_dataset(data, split="test")
        given = {**plan_of(entry, data).get("options", {}), **parse_set(options)}
        names = [o.name for o in entry.options()]
        model = ek.get_model(base(family), **data_defaults(names, train, given), **given)
        model.metrics()
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass


def serve(families: list[str], root: Path) -> list[dict[str, Any]]:
    import torch

    import ebmkit.cli  # noqa: F401
    import ebmkit.train  # noqa: F401

    torch.set_num_threads(1)  # no OpenMP pool in the helper: a fork must not inherit one
    root.mkdir(parents=True, exist_ok=True)
    for family in families:  # before forking: see warm()
        warm(family)
    return [crash_and_resume(family, root) for family in families]


# ------------------------------------------------------------------------------ the test
FAMILIES = [m for m in builtin_models() if m not in SKIP] + sorted(WITH_CALLBACKS)


def test_tiny_sizes_and_skips_name_registered_models() -> None:
    models = set(builtin_models())
    assert set(SKIP) <= models, f"SKIP names unregistered models: {set(SKIP) - models}"
    assert set(TINY) <= models, f"TINY names unregistered models: {set(TINY) - models}"
    assert not set(SKIP) & set(TINY)
    assert {base(f) for f in WITH_CALLBACKS} <= models - set(SKIP)


@pytest.mark.parametrize("family", sorted(SKIP))
def test_skipped_models_cannot_be_trained(family: str, tmp_path: Path, capsys,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ebmkit.cli import main

    monkeypatch.setenv("EBMKIT_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["train", family, "--data", "digits", "--epochs", "1", "--no-plots",
                 "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "ebmkit: error:" in err and family in err, err
    assert not (tmp_path / "run" / "trainer.pt").exists()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("crash")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "EBMKIT_LOAD_PLUGINS": "", "EBMKIT_CACHE_DIR": str(root / "cache")}
    proc = subprocess.run([sys.executable, __file__, "--root", str(root), *FAMILIES],
                          env=env, capture_output=True, text=True,
                          timeout=len(FAMILIES) * 5 * CHILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["family"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks `ebmkit train`")
@pytest.mark.parametrize("family", FAMILIES)
def test_killed_and_resumed_run_ends_bit_exact(family: str, reports) -> None:
    report = reports[family]
    assert "error" not in report, (report, Path(report.get("log", "")).read_text()[-3000:]
                                   if report.get("log") else "")
    epochs = recipe(family)[1]
    assert report["epochs"] == epochs
    # it was interrupted, with work left, and resumed from a checkpoint
    killed = [k for k in report["kills"] if k["outcome"] == "killed"
              and k["epochs_after"] < epochs]
    assert len(killed) >= 2 and report["final_resumed"], report
    assert report["exact"], f"{family}: weights differ after kill + resume: {report}"


if __name__ == "__main__":
    args = sys.argv[1:]
    root = Path(args[args.index("--root") + 1]) if "--root" in args else None
    if root is not None:
        del args[args.index("--root"):args.index("--root") + 2]
    if root is None:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="ebmkit-crash-"))
        os.environ.setdefault("EBMKIT_CACHE_DIR", str(root / "cache"))
    print(json.dumps(serve(args or list(FAMILIES), root)))
