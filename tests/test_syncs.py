"""No host synchronisation inside a training step, for every registered family (issue 22 §3).

A host sync is a read of a device value by Python: ``Tensor.item``, ``bool``/``float``/``int``
of a tensor, ``tolist``, ``numpy``, ``nonzero`` and boolean-mask indexing (whose output size
depends on the data). On CUDA each one stalls the host until the GPU catches up; on the CPU
nothing stalls, so this test counts them by patching those entry points (what
``torch.cuda.set_sync_debug_mode`` reports on a GPU, and ``.ci/device-check`` runs there).

The model list comes from the registry (built-in plugins, ``TINY`` sizes from
``tests/test_crash_resume.py``). Each family trains three steps; the count covers the second
step (after first-step set-up such as K-means' seeding or a lazy buffer), from the call of the
strategy to the call of the next one: the strategy, ``backward``, clipping and the optimizer.

``ALLOWED`` names the families whose step reads the host by design, with the reason; a test
checks that each of them still does (so the list cannot hide a family that was fixed).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_crash_resume import SKIP, TINY, builtin_models  # noqa: E402

# Value checks that read the device only on the CPU (where reading costs no sync) or outside a
# training step; on an accelerator a training step skips them (the trainer's guard catches a
# non-finite loss). (file suffix, function) -> what it checks. The GPU check
# (.ci/device-check) runs this file under torch.cuda.set_sync_debug_mode, which sees them.
CPU_ONLY: dict[tuple[str, str], str] = {
    ("ebmkit/model.py", "check_input"): "finite='auto': NaN/inf in a public method's input",
    ("ebmkit_autoencoders/models.py", "flat"): "finite values (and [0, 1] for BCE)",
    ("ebmkit_kmeans/models.py", "_check_y"): "finite rows",
    ("ebmkit_masked/image.py", "_images"): "finite pixels (NaN marks a hidden one)",
}
# Families whose step still reads the host, awaiting a fix in their plugin (strict xfail:
# the test fails once the family is fixed, so the entry is removed then). None today.
PENDING: dict[str, str] = {}
# family -> why its step reads the host (data-dependent sizes, by design)
ALLOWED: dict[str, str] = {
    "hopfield": "storing appends each distinct row once: how many are new is a data-dependent "
                "size (one host copy of the batch to hash its rows)",
    "hopfield.classical": "storing skips rows already stored: a data-dependent size",
}

# EBMKIT_SYNC_DEVICE=cuda (.ci/device-check): the step runs on the GPU, where
# torch.cuda.set_sync_debug_mode("error") also raises at every sync PyTorch itself makes.
DEVICE = os.environ.get("EBMKIT_SYNC_DEVICE", "cpu")

_PATCHED = ("item", "__bool__", "__float__", "__int__", "tolist", "numpy", "nonzero")


class _Counter:
    """Counts host syncs (with where they came from) while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.where: Counter[str] = Counter()

    def hit(self, what: str) -> None:
        if not self.on:
            return
        self.on = False  # the frame walk below must not count itself
        try:
            stack = traceback.extract_stack()[:-2]
            if any("/torch/optim/" in f.filename for f in stack[-4:]):
                return  # an optimizer's step counter: a host tensor by design, also on a GPU
            frames = [f for f in stack
                      if "/torch/" not in f.filename and "test_syncs" not in f.filename]
            named = [f for f in frames if not f.name.startswith("<")]  # not a <genexpr>
            last = named[-1] if named else (frames[-1] if frames else None)
            if last is not None and any(last.filename.endswith(path) and last.name == fn
                                        for path, fn in CPU_ONLY):
                return
            self.where[f"{what} at {last.filename}:{last.lineno} ({last.name})" if last
                       else what] += 1
        finally:
            self.on = True


def _patches(c: _Counter) -> dict[tuple[Any, str], Any]:
    """(owner, name) -> the counting replacement of each sync entry point."""
    out: dict[tuple[Any, str], Any] = {}
    for name in _PATCHED:
        original = getattr(torch.Tensor, name)

        def patched(self: torch.Tensor, *args: Any, _o: Any = original, _n: str = name,
                    **kwargs: Any) -> Any:
            c.hit(_n)
            return _o(self, *args, **kwargs)

        out[torch.Tensor, name] = patched
    getitem = torch.Tensor.__getitem__

    def masked(self: torch.Tensor, index: Any) -> Any:
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in parts):
            c.hit("boolean-mask indexing")
        return getitem(self, index)

    out[torch.Tensor, "__getitem__"] = masked
    torch_nonzero = torch.nonzero

    def nonzero(*args: Any, **kwargs: Any) -> Any:
        c.hit("torch.nonzero")
        return torch_nonzero(*args, **kwargs)

    out[torch, "nonzero"] = nonzero
    return out


@pytest.fixture
def counter() -> Any:
    """A counter whose patches are in place only while it counts (``start``/``stop``), so
    the steps around the counted one (and any compilation in them) run unpatched."""
    c = _Counter()
    patches = _patches(c)
    saved = {key: getattr(*key) for key in patches}

    cuda = DEVICE.startswith("cuda")

    def start() -> None:
        for (owner, name), fn in patches.items():
            setattr(owner, name, fn)
        c.on = True
        if cuda:
            torch.cuda.set_sync_debug_mode("error")

    def stop() -> None:
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
        c.on = False
        for (owner, name), fn in saved.items():
            setattr(owner, name, fn)

    c.start, c.stop = start, stop  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        stop()


class _Counting:
    """The family's strategy, counting syncs over the second step."""

    def __init__(self, strategy: Any, counter: _Counter) -> None:
        self.__dict__.update(_inner=strategy, _counter=counter, _calls=0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> Any:
        self.__dict__["_calls"] = self._calls + 1
        if self._calls == 2:
            self._counter.start()
        elif self._calls == 3:
            self._counter.stop()
        return self._inner(model, batch)


def _families() -> list[str]:
    return [f for f in builtin_models() if f not in SKIP]


def _step_syncs(family: str, counter: _Counter) -> Counter[str]:
    import ebmkit as ek
    from ebmkit.cli import parse_set
    from ebmkit.runs import data_defaults, recipe

    dname, _, _, opts = TINY[family]
    full = ek.get_dataset(dname)
    batch = 8
    data = full._replace(**{k: v[: 3 * batch] for k, v in full.tensors.items()})
    entry = ek.plugins.get_entry("models", family)
    options = {**recipe(entry, dname).get("options", {}), **parse_set(opts)}
    config = {**data_defaults([o.name for o in entry.options()], data, options), **options}
    torch.manual_seed(0)
    net = ek.get_model(family, **config)
    clip = 100.0 if any(p.requires_grad for p in net.parameters()) else None
    trainer = ek.Trainer(net, epochs=1, batch_size=batch, device=DEVICE, seed=0, progress=False,
                         grad_clip=clip, check_every=1000)
    trainer.strategy = _Counting(trainer.strategy, counter)
    try:
        trainer.fit(data)
    finally:
        counter.stop()
    return counter.where


@pytest.mark.parametrize("family", [
    pytest.param(f, marks=pytest.mark.xfail(reason=PENDING[f], strict=True)) if f in PENDING
    else f for f in _families()])
def test_a_training_step_reads_nothing_back(family: str, counter: _Counter) -> None:
    where = _step_syncs(family, counter)
    if family in ALLOWED:
        assert where, f"{family} no longer syncs in its step: remove it from ALLOWED"
        return
    assert not where, f"{family}: host syncs in one training step: {dict(where)}"


def test_the_counter_sees_each_kind_of_sync(counter: _Counter) -> None:
    t = torch.ones(3)
    counter.start()
    t.sum().item()
    bool(t[0] > 0)
    float(t[0])
    t.tolist()
    t[t > 0]
    torch.nonzero(t)
    counter.stop()
    kinds = {k.split(" at ")[0] for k in counter.where}
    assert kinds == {"item", "__bool__", "__float__", "tolist", "boolean-mask indexing",
                     "torch.nonzero"}, kinds
