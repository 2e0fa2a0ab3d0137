"""Bad input, every family: each public method of each registered model refuses it clearly.

The model list comes from the registry (built-in plugins), so a family that lands without an
entry in ``CASES`` fails ``test_every_registered_model_has_a_case``; a public data method
(``DATA_METHODS``) that a model has and its case does not call fails too. For each call the
good input must work first (the baseline); then every argument in turn is replaced by

- a list instead of a tensor, an empty batch, the wrong rank (one sample without its batch
  axis), a tensor on another device (``meta`` on CPU),
- for real values: NaN and inf (except where the family's contract uses NaN to mark hidden
  entries: there only inf),
- for integer ids: ids out of range (too high, negative) and floats,
- for counts (``sample(n)``): a list, a negative number, a float,

and the call must raise an ``ebmkit.errors`` error whose message names the problem (the
pattern in ``_CLEAR`` per kind: "list", "empty", "shape", "meta", "NaN"/"finite", the id
range …), never a torch internals message, never a silent answer. Two deliberate
exceptions: ``infer`` of a latent-free model answers None whatever comes, and arguments that
take array-likes on purpose (``ARRAY_LIKE``: kmeans' data, Hopfield patterns, as
scikit-learn does) must give the tensor's answer for a list.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import EbmkitError

pytestmark = pytest.mark.usefixtures("one_thread")

#: Public methods that take data; every one a model has must be called by its case.
DATA_METHODS = ("energy", "free_energy", "infer", "predict", "reconstruct", "encode", "decode",
                "sample", "score", "retrieve", "store", "augment", "log_likelihood",
                "generate")


@dataclass
class Arg:
    """One argument of a call: its good value and its kind."""

    value: Any
    kind: str = "real"  # "real", "masked" (NaN marks hidden entries), "ids", "count"
    high: int | None = None  # ids: the first id out of range


@dataclass
class Call:
    method: str
    args: dict[str, Arg]  # name -> argument (passed by keyword; "y"/"n" may be positional)
    fixed: dict[str, Any] = field(default_factory=dict)  # other keywords, never varied
    positional: tuple[str, ...] = ()  # names passed positionally, in order


def _img(b: int = 3, d: int = 64) -> torch.Tensor:
    return torch.rand(b, d, generator=torch.Generator().manual_seed(0))


def _calls_images(m: Any) -> list[Call]:
    """A family on flat images in [0, 1] ``[B, 64]``: every data method it has, on y."""
    y = _img()
    out = [Call(meth, {"y": Arg(y)}, positional=("y",))
           for meth in ("energy", "free_energy", "infer", "reconstruct", "encode", "score",
                        "augment", "log_likelihood")
           if callable(getattr(m, meth, None))]
    if callable(getattr(m, "decode", None)):
        k = getattr(m.cfg, "latent_dim", None) or m.cfg.code  # a GAN's z, else the code
        out.append(Call("decode", {"z": Arg(torch.randn(3, k))}, positional=("z",)))
    if callable(getattr(m, "generate", None)):
        out.append(Call("generate", {"z": Arg(torch.randn(3, m.cfg.latent_dim))},
                        positional=("z",)))
    if callable(getattr(m, "sample", None)):
        out.append(Call("sample", {"n": Arg(2, "count")}, positional=("n",)))
    return out


def _calls_sparse(m: Any) -> list[Call]:
    y = _img()
    z = torch.randn(3, m.cfg.atoms)
    out = [Call("energy", {"y": Arg(y), "z": Arg(z)}, positional=("y",))]
    out += [Call(meth, {"y": Arg(y)}, positional=("y",))
            for meth in ("free_energy", "infer", "reconstruct", "encode", "predict")
            if callable(getattr(m, meth, None))]
    if callable(getattr(m, "decode", None)):
        out.append(Call("decode", {"z": Arg(z)}, positional=("z",)))
    return out


def _calls_kmeans(m: Any) -> list[Call]:
    y = _img()
    m.fit(_img(30))
    return [Call("energy", {"y": Arg(y), "z": Arg(torch.tensor([0, 1, 2]), "ids", m.cfg.k)},
                 positional=("y",))] + [
        Call(meth, {"y": Arg(y)}, positional=("y",))
        for meth in ("free_energy", "infer", "predict", "reconstruct", "score")]


def _calls_masked_image(m: Any) -> list[Call]:
    y = _img()
    make = m.corrupt if hasattr(m, "corrupt") else m.mask
    x = make(y)
    return [Call("energy", {"y": Arg(y), "x": Arg(x, "masked")}, positional=("y",)),
            Call("free_energy", {"y": Arg(y), "x": Arg(x, "masked")}, positional=("y",)),
            Call("infer", {"y": Arg(y), "x": Arg(x, "masked")}, positional=("y",)),
            Call("predict", {"x": Arg(x, "masked")}, positional=("x",)),
            Call("reconstruct", {"y": Arg(y)}, positional=("y",))]


def _calls_lm(m: Any) -> list[Call]:
    v = m.vocab_size  # ids 0 … v − 1
    g = torch.Generator().manual_seed(0)
    y = torch.randint(5, v, (2, 12), generator=g)
    x = y.clone()
    x[:, ::3] = 2  # <mask>
    ids = {"kind": "ids", "high": v}
    return [Call("energy", {"y": Arg(y, **ids), "x": Arg(x, **ids)}, positional=("y",)),
            Call("free_energy", {"y": Arg(y, **ids)}, positional=("y",)),
            Call("infer", {"y": Arg(y, **ids), "x": Arg(x, **ids)}, positional=("y",)),
            Call("predict", {"x": Arg(x, **ids)}, positional=("x",)),
            Call("score", {"y": Arg(y, **ids)}, positional=("y",)),
            Call("decode", {"ids": Arg(y, **ids)}, positional=("ids",)),
            Call("sample", {"n": Arg(2, "count")}, fixed={"steps": 1, "length": 8},
                 positional=("n",))]


def _calls_hopfield(m: Any, patterns: torch.Tensor, query: torch.Tensor) -> list[Call]:
    m.store(patterns)
    x = query.clone()
    x[:, ::2] = float("nan") if m.name == "hopfield" else 0.0
    return [Call("store", {"X": Arg(patterns)}, positional=("X",))] + [
        Call(meth, {"y": Arg(query)}, positional=("y",))
        for meth in ("energy", "free_energy", "infer", "retrieve", "reconstruct")] + [
        Call("predict", {"x": Arg(x, "masked")}, positional=("x",))]  # NaN: unknown


def _calls_worldmodels(m: Any) -> list[Call]:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 5, m.cfg.code, generator=g)
    a = torch.randint(m.cfg.actions, (2, 4), generator=g)
    acts = Arg(a, "ids", m.cfg.actions)
    return [Call(meth, {"y": Arg(y), "x": acts}, positional=("y",))
            for meth in ("energy", "free_energy", "infer")]


def _calls_ssl(m: Any) -> list[Call]:
    y = _img(4)
    return [Call("energy", {"y": Arg(y), "x": Arg(m.augment(y))}, positional=("y",))] + [
        Call(meth, {"y": Arg(y)}, positional=("y",))
        for meth in ("free_energy", "infer", "encode", "augment")]


def _calls_neural_mlp(m: Any) -> list[Call]:
    y = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    return [Call(meth, {"y": Arg(y)}, positional=("y",))
            for meth in ("energy", "free_energy", "infer", "score")] + [
        Call("sample", {"n": Arg(2, "count")}, fixed={"steps": 2}, positional=("n",))]


def _calls_neural_images(m: Any) -> list[Call]:
    calls = [c for c in _calls_images(m) if c.method != "sample"]
    calls.append(Call("sample", {"n": Arg(2, "count")}, fixed={"steps": 2}, positional=("n",)))
    if callable(getattr(m, "predict", None)):  # neural.jem: a classifier, E(y, c) = −f(y)_c
        calls.append(Call("predict", {"y": Arg(_img())}, positional=("y",)))
        classes = Arg(torch.tensor([0, 1, 2]), "ids", m.cfg.num_classes)
        calls.append(Call("energy", {"y": Arg(_img()), "z": classes}, positional=("y",)))
    return calls


_PM1 = torch.where(torch.rand(5, 64, generator=torch.Generator().manual_seed(1)) < 0.5, -1.0, 1.0)

#: Arguments that take array-likes (lists, NumPy arrays) on purpose, as scikit-learn does
#: (kmeans' data, the Hopfield memories' patterns); a list must give the tensor's answer.
ARRAY_LIKE = {"kmeans": {"y"}, "hopfield": {"X"}, "hopfield.classical": {"X"}}

#: Built-in models: tiny options and the calls that exercise their public data methods.
CASES: dict[str, tuple[dict[str, Any], Callable[[Any], list[Call]]]] = {
    "attention.transformer": ({"steps": 2, "memories": 16, "decoder_hidden": 16},
                              _calls_masked_image),
    "autoencoder": ({"hidden": 16}, _calls_images),
    "autoencoder.contractive": ({}, _calls_images),
    "autoencoder.denoising": ({"hidden": 16}, _calls_images),
    "autoencoder.sparse": ({"hidden": 16, "code": 16, "steps": 3}, _calls_images),
    "autoencoder.variational": ({"hidden": 16, "iw_samples": 2}, _calls_images),
    "gan.dcgan": ({"g_width": 8, "d_width": 8, "latent_dim": 4}, _calls_images),
    "gan.ebgan": ({"g_width": 8, "d_width": 8, "latent_dim": 4, "code_dim": 4}, _calls_images),
    "hopfield": ({}, lambda m: _calls_hopfield(m, _img(5), _img(3))),
    "hopfield.classical": ({"steps": 2}, lambda m: _calls_hopfield(m, _PM1, _PM1[:3])),
    "kmeans": ({"k": 3}, _calls_kmeans),
    "masked.image": ({"n_layer": 1, "d_model": 16, "n_head": 2}, _calls_masked_image),
    "masked.lm": ({"block_size": 16, "n_layer": 1, "d_model": 16, "n_head": 2}, _calls_lm),
    "neural.conv": ({"channels": 4, "langevin_steps": 2}, _calls_neural_images),
    "neural.jem": ({"channels": 4, "langevin_steps": 2, "buffer_size": 0},
                   _calls_neural_images),
    "neural.mlp": ({"hidden": 8, "langevin_steps": 2, "buffer_size": 0}, _calls_neural_mlp),
    "sparse.coding": ({"atoms": 16, "steps": 3}, _calls_sparse),
    "sparse.drsae": ({"atoms": 16, "layers": 2}, _calls_sparse),
    "sparse.group": ({"atoms": 16, "steps": 3}, _calls_sparse),
    "sparse.lista": ({"atoms": 16, "layers": 2, "fista_steps": 3}, _calls_sparse),
    **{f"ssl.{n}": ({"hidden": 16, "proj_hidden": 16, "channels": [4, 8],
                     **({"image_shape": [1, 8, 8]} if n == "pirl" else {})}, _calls_ssl)
       for n in ("barlow", "byol", "moco", "pirl", "simclr", "swav", "vicreg")},
    "worldmodels": ({"frame_size": 8, "code": 3, "channels": 2, "hidden": 4, "mixtures": 2},
                    _calls_worldmodels),
}


def _builtin_models() -> list[str]:
    """Registered models that come from the built-in plugins (installed test plugins aside)."""
    return sorted(m for p in ek.get_plugins() if p.builtin
                  for m in p.registers.get("models", []))


# -- the bad variants ------------------------------------------------------------------------
def _variants(arg: Arg) -> list[tuple[str, Any]]:
    v = arg.value
    if arg.kind == "count":
        return [("count list", [v]), ("negative", -1), ("float", 2.5)]
    out = [("list", v.tolist()), ("empty batch", v[:0]), ("wrong rank", v[0]),
           ("meta device", v.to("meta"))]
    if arg.kind == "ids":
        hi = v.clone().flatten()
        hi[0] = arg.high
        lo = v.clone().flatten()
        lo[0] = -1
        out += [("id too high", hi.reshape(v.shape)), ("negative id", lo.reshape(v.shape)),
                ("float ids", v.float())]
        return out
    inf = v.clone()
    inf.view(-1)[1] = float("inf")
    out.append(("inf", inf))
    if arg.kind != "masked":
        nan = v.clone()
        nan.view(-1)[1] = float("nan")
        out.append(("nan", nan))
    return out


def _invoke(model: Any, call: Call, args: dict[str, Any]) -> Any:
    pos = [args[k] for k in call.positional]
    kw = {k: a for k, a in args.items() if k not in call.positional}
    return getattr(model, call.method)(*pos, **kw, **call.fixed)


#: What a clear message names, per kind of bad input (besides being an ``ebmkit`` error).
_CLEAR = {
    "list": r"\blist\b",
    "empty batch": r"empty|at least one|\b0\b",
    "wrong rank": r"shape|rank|dim|batch size",
    "meta device": r"\bmeta\b",
    "inf": r"\binf|finite",
    "nan": r"\bnan\b|finite",
    "id too high": r"\bid|range|vocab|\[0, |< ",
    "negative id": r"\bid|range|vocab|\[0, |>= ?0|non-negative",
    "float ids": r"\bint|\bid|long|float",
    "count list": r"\bint|list",
    "negative": r"-1|>= ?[01]|positive|at least",
    "float": r"\bint|2\.5",
}


def _check_model(name: str) -> list[str]:
    options, make_calls = CASES[name]
    torch.manual_seed(0)
    model = ek.get_model(name, **options).eval()
    calls = make_calls(model)
    problems = []
    missing = sorted({m for m in DATA_METHODS if callable(getattr(model, m, None))
                      and not isinstance(getattr(model, m), torch.nn.Module)}  # a sub-network
                     - {c.method for c in calls})
    if missing:
        problems.append(f"{name}: the case does not call {', '.join(missing)}")
    for call in calls:
        good = {k: a.value for k, a in call.args.items()}
        try:
            answer = _invoke(model, call, good)
        except Exception as exc:  # the baseline must work
            problems.append(f"{name}.{call.method}(good input) raised {type(exc).__name__}: "
                            f"{exc}")
            continue
        if call.method == "infer" and answer is None:
            continue  # a model without a latent: infer answers None whatever comes
        lists = ARRAY_LIKE.get(name, set()) & set(call.args)
        if lists and isinstance(answer, torch.Tensor):
            listed = {k: (a.value.tolist() if k in lists else a.value)
                      for k, a in call.args.items()}
            if not torch.equal(_invoke(model, call, listed), answer):
                problems.append(f"{name}.{call.method}: a list gave another answer")
        for key, arg in call.args.items():
            for label, bad in _variants(arg):
                where = f"{name}.{call.method}({key}: {label})"
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _invoke(model, call, {**good, key: bad})
                except EbmkitError as exc:
                    if not re.search(_CLEAR[label], str(exc), re.I):
                        problems.append(f"{where}: unclear message: {exc}")
                except Exception as exc:
                    problems.append(f"{where}: {type(exc).__name__} (not an ebmkit error): "
                                    f"{str(exc)[:160]}")
                else:
                    if label == "list" and key in ARRAY_LIKE.get(name, ()):
                        continue  # converted on purpose, like scikit-learn (same answer below)
                    problems.append(f"{where}: no error (a silent answer)")
    return problems


def test_every_registered_model_has_a_case():
    builtin = _builtin_models()
    assert len(builtin) >= 25, builtin
    assert sorted(set(builtin) - set(CASES)) == []
    assert sorted(set(CASES) - set(ek.list_models())) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_clearly(name):
    problems = _check_model(name)
    assert not problems, "\n".join(problems)
