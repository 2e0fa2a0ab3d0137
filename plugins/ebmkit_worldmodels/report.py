"""The run's report: ``report.md`` with the ablation lines, and its PNGs.

- ``frames.png``: held-out frames (top) and V's reconstructions (bottom);
- ``dream.png``: one rollout dreamed by M at temperature τ under C, decoded by V;
- ``learning_curve.png``: CMA-ES best and mean candidate return per generation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

import ebmkit as ek

from .env import Episode, stack_frames
from .mdnrnn import sample_mixture

from .result import Result

if TYPE_CHECKING:
    from .model import WorldModel

__all__ = ["write_report", "ablation_lines", "vision_memory_lines", "speed_line"]


def ablation_lines(result: Result) -> list[str]:
    """``V+M: mean return R over N episodes`` (and ``V-only:``, ``random:``)."""
    lines = []
    for who in ("V+M", "V-only", "random"):
        if who in result.returns:
            r = np.asarray(result.returns[who])
            lines.append(f"{who}: mean return {r.mean():.1f} over {len(r)} episodes "
                         f"(std {r.std():.1f}, min {r.min():.0f}, max {r.max():.0f})")
    return lines


@torch.no_grad()
def dream_frames(model: WorldModel, start: torch.Tensor, steps: int = 16,
                 seed: int = 0) -> torch.Tensor:
    """Decode one dreamed rollout of ``steps`` from latent ``start [K]``: ``[steps, D]``."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    z = start[None]
    h, c = model.memory.initial(1, model.device)
    out = [z]
    for _ in range(steps - 1):
        f = torch.cat([z, h[0]], dim=-1) if model.cfg.memory else z
        a = model.controller(f)
        mix, (h, c) = model.memory.step(z, a, (h, c))
        z = sample_mixture(mix, model.cfg.temperature, g)
        out.append(z)
    return model.vision.decode(torch.cat(out))


def _plots(out: Path, model: WorldModel, result: Result, test: list[Episode]) -> list[str]:
    names = []
    s = model.cfg.frame_size
    frames = stack_frames(test)[:: max(1, len(stack_frames(test)) // 8)][:8]
    y = frames.to(model.device).float() / 255
    with torch.no_grad():
        recon = model.vision.decode(model.vision.encode(y))
    grid = torch.cat([y, recon]).reshape(-1, 1, s, s).cpu()
    ek.viz.plot_images(grid, out / "frames.png", nrow=8,
                       title="held-out frames (top) and V's reconstructions")
    names.append("frames.png")

    start = model.vision.encode(test[0].frames[:1].to(model.device).float() / 255)[0]
    dream = dream_frames(model, start, steps=16).reshape(-1, 1, s, s).cpu()
    ek.viz.plot_images(dream, out / "dream.png", nrow=8,
                       title=f"a rollout dreamed by M (τ = {model.cfg.temperature:g}) under C, "
                             "decoded by V")
    names.append("dream.png")

    plt = ek.viz.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    offset = 0
    for name, hist in result.searches.items():
        gens = np.arange(offset, offset + len(hist["best"])) if name != "V-only" else \
            np.arange(len(hist["best"]))
        ax.plot(gens, hist["best"], label=f"{name}: best")
        ax.plot(gens, hist["mean"], "--", label=f"{name}: mean")
        if name != "V-only":
            offset += len(hist["best"])
    for name, hist in result.dream_searches.items():  # before the real search: x < 0
        gens = np.arange(-len(hist["mean"]), 0)
        ax.plot(gens, hist["mean"], ":", label=f"{name} in M's dream: mean")
    ax.set_xlabel("CMA-ES generation" + (" (< 0: in M's dream)" if result.dream_searches
                                         else ""))
    ax.set_ylabel("mean return of the candidate's episodes")
    ax.legend(fontsize=7)
    ax.set_title("C's search" + (" in M's dream, then" if result.dream_searches else "")
                 + " in the real environment")
    ek.viz.save_figure(fig, out / "learning_curve.png")
    names.append("learning_curve.png")
    return names


def _budget_line(result: Result) -> str:
    """What C's searches did: generations in the dream and in the real environment."""
    cfg = result.config
    parts = [f"{name} {len(h['mean'])} in M's dream" for name, h in result.dream_searches.items()]
    parts += [f"{name} {len(h['mean'])} real" for name, h in result.searches.items()]
    stop = (f", stopping once a generation's mean reaches {cfg['stop_at'] * cfg['max_steps']:g}"
            if cfg.get("stop_at") else "")
    dream = f", after {cfg['dream_generations']} in M's dream" if cfg["dream"] else ""
    return (f"C's search budget: at most {cfg['generations']} real generations per search "
            f"(episodes capped at {cfg['max_steps']} steps{stop}){dream}; generations run: "
            + "; ".join(parts) + ".")


def _likelihood_note(model: WorldModel) -> str:
    """What V's free energy bounds, by its decoder (docs/families/worldmodels.md)."""
    if model.vision.likelihood == "bernoulli":
        return ("Bernoulli decoder: a cross-entropy, not the log of a density on grey frames; "
                "it bounds −log of a sub-normalised p̃(y)")
    return f"{model.vision.likelihood.replace('_', ' ')} decoder: a bound on −log p(y)"


def _dream_line(result: Result) -> list[str]:
    """Dreamed vs real survival, where the dream's return means something (survival tasks)."""
    if math.isnan(result.dream_return):
        return []
    caveat = ("" if _m_learned(result) else
              " M does not yet beat \"the latent stays the same\" (below), so its dream is "
              "not yet a model of the game.")
    return [f"Dream vs real: the V+M controller survives {result.dream_return:.1f} steps on "
            f"average in M's dream (τ = {result.config['temperature']:g}) and "
            f"{result.mean('V+M'):.1f} in the real environment.{caveat}", ""]


def _m_learned(result: Result) -> bool:
    """Whether M's held-out transition energy beats "the latent stays the same"."""
    mt = result.memory_test
    return bool(mt) and mt["nll"] < mt["nll_same_latent"]


def vision_memory_lines(result: Result, likelihood_note: str) -> list[str]:
    """V against the mean frame and M against "the latent stays the same", with what was
    trained; a figure that does not yet beat its baseline says so (e.g. ``--budget tiny``,
    whose few epochs check the plumbing, not the quality)."""
    cfg, vt, mt = result.config, result.vision_test, result.memory_test
    pixels = vt.get("pixels", cfg["frame_size"] ** 2)
    v_line = (f"- V: free energy (−ELBO) {vt['free_energy']:.1f} nats/frame ({likelihood_note}); "
              f"squared error {vt['mse']:.2f} per frame (summed over its {pixels} pixels: "
              f"{vt['mse'] / pixels:.2g} per pixel) vs {vt['mse_mean_frame']:.2f} for the mean "
              f"frame.")
    if not vt["mse"] < vt["mse_mean_frame"]:
        frames = vt.get("train_frames")
        v_line += (f" V does not yet beat the mean frame: it trained {cfg['vae_epochs']} "
                   f"epoch{'s' * (cfg['vae_epochs'] != 1)}"
                   f"{f' over {frames} frames' if frames else ''}, too few to learn even the "
                   f"background (the default budget trains 8 over about 6,700 frames; "
                   f"docs/families/worldmodels.md gives its figures).")
    m_line = (f"- M: transition energy (mixture NLL) {mt['nll']:.2f} nats/step vs "
              f"{mt['nll_same_latent']:.2f} for \"the latent stays the same\" (a Gaussian around "
              "z_t).")
    if not _m_learned(result):
        m_line += (f" M does not yet beat it: it trained {cfg['mdn_epochs']} "
                   f"epoch{'s' * (cfg['mdn_epochs'] != 1)} on V's codes (the default budget: 30).")
    return [v_line, m_line]


def speed_line(result: Result) -> str:
    """Environment and dream steps per second; the dream's only where C was searched there."""
    sp = result.speed
    dream = (f"dream steps/s: {sp['dream_steps_per_s']:.0f}" if sp.get("dream_steps")
             else "no search in M's dream (`--dream` runs one)")
    return (f"- environment steps/s: {sp['collect_steps_per_s']:.0f} collecting (random), "
            f"{sp['control_steps_per_s']:.0f} under the agent (V, M, C in the loop); {dream}.")


def write_report(out: Path, model: WorldModel, result: Result, test: list[Episode]) -> None:
    """Write ``report.md``, ``result.json`` and the PNGs (when matplotlib is installed)."""
    from dataclasses import asdict

    try:
        pictures = _plots(out, model, result, test)
    except ImportError:
        pictures = []
    cfg = result.config
    sec = result.seconds
    total = sec.get("total", math.nan)
    lines = [
        f"# World Models on {cfg['env']}", "",
        f"Frames: grey {cfg['frame_size']}×{cfg['frame_size']}; V: conv VAE, code "
        f"{cfg['code']}; M: LSTM {cfg['hidden']} + {cfg['mixtures']} Gaussians per latent; "
        f"C: linear on [z, h] (CMA-ES, population {cfg['popsize']}, {cfg['rollouts']} "
        "rollouts per candidate).", "",
        _budget_line(result), "",
        "## Returns in the real environment (seeded evaluation episodes)", "",
        *[f"- {line}" for line in ablation_lines(result)], "",
        *_dream_line(result),
        "## V and M on held-out random episodes", "",
        *vision_memory_lines(result, _likelihood_note(model)), "",
        "## Time and speed (wall clock)", "",
        f"- total {total:.0f} s ({sec.get('cpu_total', math.nan):.0f} s of CPU time): "
        f"environment {sec['env']:.0f} s, V {sec['V']:.0f} s, M {sec['M']:.0f} s, C "
        f"{sec['C']:.0f} s (C: V's encoder, M's step and C acting, batched; CMA-ES; dream).",
        f"- {result.episodes_collected} episodes, {result.frames_collected} frames collected; "
        f"{result.speed['env_steps']} real steps in all.",
        speed_line(result), "",
    ]
    if pictures:
        lines += ["## Pictures", ""] + [f"![{p}]({p})" for p in pictures] + [""]
    ek.checkpoint.atomic_write_text(out / "report.md", "\n".join(lines))
    ek.checkpoint.atomic_write_text(out / "result.json", json.dumps(asdict(result), indent=1, default=float))
