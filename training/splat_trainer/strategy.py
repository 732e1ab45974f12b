"""Densification: gsplat 1.5.3's DefaultStrategy with its opacity reset working, and MCMC with a cap.

gsplat 1.5.3's DefaultStrategy.step_post_backward tests `step % self.reset_every == 0 & step > 0`. Python's
`&` binds tighter than `==` and `>`, so that reads `step % reset_every == (0 & step) > 0`, a chained
comparison that is never true: opacities are never reset (fixed upstream after the release to
`step % self.reset_every == 0 and step > 0`). Without the reset, floaters are never pruned and quality drops.

`FixedDefaultStrategy` keeps gsplat's thresholds, state layout and split/duplicate/prune/reset semantics (the
ops below are gsplat's, restated in plain PyTorch) with the fixed reset condition. It is restated rather
than subclassed because importing gsplat.strategy imports gsplat itself, and the CPU path (backend=torch;
the exporter falls back too) runs where gsplat is not installed or cannot load. It runs on any device,
so CI exercises the exact code the GPU runs; gsplat's ops are pure PyTorch too, so nothing is lost.

One schedule option gsplat lacks: `reset_start_iter` (the trainer's default is half the refinement phase).
No opacity reset happens before it (resets stay on multiples of reset_every), and the pruning of Gaussians
too large in world space starts with the first reset, the order 3DGS and gsplat keep (both start that pruning
after the first reset interval). Why: a reset clamps every opacity to 0.01 while the model is still growing;
measured on the outdoor bench scene, training PSNR fell from 31.6 to 17.6 dB at the 3k reset and took about
2k steps to recover, and the size pruning at 3k took the far background away (test PSNR 31 -> 27 dB at 4k in
both trainers). Later resets still cull what densification over-produced, with refinement left to refill it.
reset_start_iter=0 restores gsplat's schedule exactly.
MCMC (relocation needs a CUDA kernel) comes from gsplat itself; see `make_strategy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .raster_torch import quat_to_rotmat


def opacity_reset_due(step: int, reset_every: int) -> bool:
    """The fixed upstream condition (gsplat > 1.5.3)."""
    return step % reset_every == 0 and step > 0


def first_reset_step(reset_every: int, reset_start_iter: int = 0) -> int:
    """The first step with an opacity reset: the first positive multiple of reset_every at or after
    reset_start_iter (reset_every itself for reset_start_iter <= reset_every, as in gsplat)."""
    return max(1, -(-max(reset_start_iter, 1) // reset_every)) * reset_every


def gsplat_1_5_3_reset_condition(step: int, reset_every: int) -> bool:
    """gsplat 1.5.3's expression, verbatim, kept to show (and test) that it is never true."""
    return step % reset_every == 0 & step > 0


@torch.no_grad()
def _update_params(param_fn: Callable, optimizer_fn: Callable, params: dict, optimizers: dict,
                   names: list[str] | None = None) -> None:
    """Replace each parameter and carry its Adam moments along (gsplat's _update_param_with_optimizer)."""
    for name in names or list(params.keys()):
        param = params[name]
        new_param = param_fn(name, param)
        params[name] = new_param
        optimizer = optimizers[name]
        for i in range(len(optimizer.param_groups)):
            p_state = optimizer.state[param]
            del optimizer.state[param]
            for key in list(p_state.keys()):
                if key != "step":
                    p_state[key] = optimizer_fn(key, p_state[key])
            optimizer.param_groups[i]["params"] = [new_param]
            optimizer.state[new_param] = p_state


@torch.no_grad()
def duplicate(params: dict, optimizers: dict, state: dict, mask: torch.Tensor) -> None:
    sel = torch.where(mask)[0]
    _update_params(
        lambda name, p: torch.nn.Parameter(torch.cat([p, p[sel]]), requires_grad=p.requires_grad),
        lambda key, v: torch.cat([v, torch.zeros((len(sel), *v.shape[1:]), device=v.device, dtype=v.dtype)]),
        params, optimizers)
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            state[k] = torch.cat((v, v[sel]))


@torch.no_grad()
def split(params: dict, optimizers: dict, state: dict, mask: torch.Tensor, revised_opacity: bool = False) -> None:
    device = mask.device
    sel = torch.where(mask)[0]
    rest = torch.where(~mask)[0]
    scales = torch.exp(params["scales"][sel])
    rotmats = quat_to_rotmat(params["quats"][sel])
    samples = torch.einsum("nij,nj,bnj->bni", rotmats, scales, torch.randn(2, len(scales), 3, device=device))

    def param_fn(name: str, p: torch.Tensor) -> torch.Tensor:
        repeats = [2] + [1] * (p.dim() - 1)
        if name == "means":
            p_split = (p[sel] + samples).reshape(-1, 3)
        elif name == "scales":
            p_split = torch.log(scales / 1.6).repeat(2, 1)
        elif name == "opacities" and revised_opacity:
            p_split = torch.logit(1.0 - torch.sqrt(1.0 - torch.sigmoid(p[sel]))).repeat(repeats)
        else:
            p_split = p[sel].repeat(repeats)
        return torch.nn.Parameter(torch.cat([p[rest], p_split]), requires_grad=p.requires_grad)

    def optimizer_fn(key: str, v: torch.Tensor) -> torch.Tensor:
        return torch.cat([v[rest], torch.zeros((2 * len(sel), *v.shape[1:]), device=device, dtype=v.dtype)])

    _update_params(param_fn, optimizer_fn, params, optimizers)
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            state[k] = torch.cat((v[rest], v[sel].repeat([2] + [1] * (v.dim() - 1))))


@torch.no_grad()
def remove(params: dict, optimizers: dict, state: dict, mask: torch.Tensor) -> None:
    sel = torch.where(~mask)[0]
    _update_params(lambda name, p: torch.nn.Parameter(p[sel], requires_grad=p.requires_grad),
                   lambda key, v: v[sel], params, optimizers)
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            state[k] = v[sel]


@torch.no_grad()
def reset_opacity(params: dict, optimizers: dict, value: float) -> None:
    """Clamp opacities to at most `value` (post-sigmoid) and zero their Adam moments (gsplat's reset_opa)."""
    ceiling = torch.logit(torch.tensor(value)).item()
    _update_params(lambda name, p: torch.nn.Parameter(torch.clamp(p, max=ceiling), requires_grad=p.requires_grad),
                   lambda key, v: torch.zeros_like(v), params, optimizers, names=["opacities"])


@dataclass
class FixedDefaultStrategy:
    """gsplat 1.5.3 DefaultStrategy (same defaults and interface) with the opacity reset fixed."""

    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    grow_scale2d: float = 0.05
    prune_scale3d: float = 0.1
    prune_scale2d: float = 0.15
    refine_scale2d_stop_iter: int = 0
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    reset_every: int = 3000
    # no opacity reset before this step, and no world-space size pruning before the first reset (see the module
    # docstring); 0, gsplat's behaviour, is this class's default; the trainer's config defaults to half of
    # refine_stop_iter
    reset_start_iter: int = 0
    refine_every: int = 100
    pause_refine_after_reset: int = 0
    absgrad: bool = False
    revised_opacity: bool = False
    verbose: bool = False
    key_for_gradient: str = "means2d"
    # (step, Gaussians now, Gaussians after this growth) -> whether the growth may happen (the memory budget,
    # memory.GrowthGuard); None: always. A refused growth ends the refinement phase early: from that step the
    # strategy does what it does after refine_stop_iter (nothing: no growth, no pruning, no opacity reset).
    # Pruning large Gaussians and resetting opacities both rely on growth to fill what they remove: measured on
    # the outdoor bench scene under a 2.5 GiB cap, halting growth alone let them erode the model (train PSNR
    # 23 -> 15 dB from step 4k to 7k, the far background pruned as "too big" and never replaced).
    growth_guard: Callable[[int, int, int], bool] | None = field(default=None, repr=False, compare=False)

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        state: dict[str, Any] = {"grad2d": None, "count": None, "scene_scale": scene_scale, "refine_halted_at": None}
        if self.refine_scale2d_stop_iter > 0:
            state["radii"] = None
        return state

    def check_sanity(self, params: dict, optimizers: dict) -> None:
        missing = [k for k in ("means", "scales", "quats", "opacities") if k not in params]
        if missing or set(params) != set(optimizers):
            raise ValueError(f"params/optimizers mismatch: missing {missing}, params {sorted(params)}, "
                             f"optimizers {sorted(optimizers)}")

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        info[self.key_for_gradient].retain_grad()

    def step_post_backward(self, params, optimizers, state, step, info, packed: bool = False) -> dict[str, int]:
        """Returns what happened at this step (counts) so callers and tests can see it."""
        events = {"duplicated": 0, "split": 0, "pruned": 0, "opacity_reset": 0, "growth_refused": 0}
        if step >= self.refine_stop_iter or state.get("refine_halted_at") is not None:
            return events
        self._update_state(params, state, info, packed=packed)
        if (step > self.refine_start_iter and step % self.refine_every == 0
                and step % self.reset_every >= self.pause_refine_after_reset):
            grown = self._grow_gs(params, optimizers, state, step)
            if grown is None:  # the memory budget ends refinement here (see growth_guard)
                events["growth_refused"] = 1
                state["refine_halted_at"] = step
                state["grad2d"], state["count"] = None, None
                return events
            events["duplicated"], events["split"] = grown
            events["pruned"] = self._prune_gs(params, optimizers, state, step)
            state["grad2d"].zero_()
            state["count"].zero_()
            if self.refine_scale2d_stop_iter > 0:
                state["radii"].zero_()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if opacity_reset_due(step, self.reset_every) and step >= self.reset_start_iter:
            reset_opacity(params, optimizers, value=self.prune_opa * 2.0)
            events["opacity_reset"] = 1
        return events

    def _update_state(self, params, state, info, packed: bool = False) -> None:
        for key in ("width", "height", "n_cameras", "radii", "gaussian_ids", self.key_for_gradient):
            if key not in info:
                raise KeyError(f"rasterization info lacks {key!r}, which the strategy needs")
        grad_src = info[self.key_for_gradient]
        grads = (grad_src.absgrad if self.absgrad else grad_src.grad).clone()
        grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
        grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
        n_gaussian = len(params["means"])
        if state["grad2d"] is None:
            state["grad2d"] = torch.zeros(n_gaussian, device=grads.device)
        if state["count"] is None:
            state["count"] = torch.zeros(n_gaussian, device=grads.device)
        if self.refine_scale2d_stop_iter > 0 and state["radii"] is None:
            state["radii"] = torch.zeros(n_gaussian, device=grads.device)
        if packed:
            gs_ids = info["gaussian_ids"]
            radii = info["radii"].max(dim=-1).values
        else:
            sel = (info["radii"] > 0.0).all(dim=-1)
            gs_ids = torch.where(sel)[1]
            grads = grads[sel]
            radii = info["radii"][sel].max(dim=-1).values
        state["grad2d"].index_add_(0, gs_ids, grads.norm(dim=-1))
        state["count"].index_add_(0, gs_ids, torch.ones_like(gs_ids, dtype=torch.float32))
        if self.refine_scale2d_stop_iter > 0:
            state["radii"][gs_ids] = torch.maximum(state["radii"][gs_ids],
                                                   radii / float(max(info["width"], info["height"])))

    @torch.no_grad()
    def _grow_gs(self, params, optimizers, state, step) -> tuple[int, int] | None:
        """(duplicated, split), or None when the growth guard refused the growth."""
        grads = state["grad2d"] / state["count"].clamp_min(1)
        is_grad_high = grads > self.grow_grad2d
        is_small = torch.exp(params["scales"]).max(dim=-1).values <= self.grow_scale3d * state["scene_scale"]
        is_dupli = is_grad_high & is_small
        n_dupli = int(is_dupli.sum().item())
        is_split = is_grad_high & ~is_small
        if step < self.refine_scale2d_stop_iter:
            is_split |= state["radii"] > self.grow_scale2d
        n_split = int(is_split.sum().item())
        n_now = len(params["means"])
        # a split replaces one Gaussian by two: +1 each, like a duplicate
        if self.growth_guard is not None and n_dupli + n_split > 0 and not self.growth_guard(
                step, n_now, n_now + n_dupli + n_split):
            return None
        if n_dupli > 0:
            duplicate(params, optimizers, state, is_dupli)
        is_split = torch.cat([is_split, torch.zeros(n_dupli, dtype=torch.bool, device=is_split.device)])
        if n_split > 0:
            split(params, optimizers, state, is_split, revised_opacity=self.revised_opacity)
        return n_dupli, n_split

    @torch.no_grad()
    def _prune_gs(self, params, optimizers, state, step) -> int:
        is_prune = torch.sigmoid(params["opacities"].flatten()) < self.prune_opa
        if step > first_reset_step(self.reset_every, self.reset_start_iter):
            is_too_big = torch.exp(params["scales"]).max(dim=-1).values > self.prune_scale3d * state["scene_scale"]
            if step < self.refine_scale2d_stop_iter:
                is_too_big |= state["radii"] > self.prune_scale2d
            is_prune = is_prune | is_too_big
        n_prune = int(is_prune.sum().item())
        if n_prune > 0:
            remove(params, optimizers, state, is_prune)
        return n_prune


class StrategyUnavailable(RuntimeError):
    """The requested strategy cannot run with this backend/device; the message says what to change."""


def make_strategy(cfg, backend_name: str, cap_max: int | None = None,
                  growth_guard: Callable[[int, int, int], bool] | None = None):
    """DefaultStrategy (fixed, with the memory growth guard) for "default"; gsplat's MCMCStrategy with cap_max
    for "mcmc" (CUDA only; cap_max is its memory bound)."""
    if cfg.strategy == "default":
        if cfg.absgrad and backend_name != "gsplat":
            raise StrategyUnavailable(
                "absgrad=true densifies on gsplat's per-pixel absolute gradients: it needs backend=gsplat on a GPU "
                "(set absgrad=false for the torch backend)"
            )
        return FixedDefaultStrategy(
            prune_opa=cfg.prune_opa, grow_grad2d=cfg.grow_grad2d, grow_scale3d=cfg.grow_scale3d,
            prune_scale3d=cfg.prune_scale3d, refine_start_iter=cfg.refine_start_iter,
            refine_stop_iter=cfg.refine_stop_iter, reset_every=cfg.reset_every,
            reset_start_iter=cfg.first_opacity_reset_from(), refine_every=cfg.refine_every,
            absgrad=cfg.absgrad, growth_guard=growth_guard,
        )
    if backend_name != "gsplat":
        raise StrategyUnavailable(
            "strategy=mcmc relocates Gaussians with a gsplat CUDA kernel: it needs backend=gsplat on a GPU "
            "(use strategy=default with backend=torch)"
        )
    from gsplat.strategy import MCMCStrategy

    # MCMC keeps refining longer than the default strategy (gsplat's default 25k) unless the user said otherwise
    stop = cfg.refine_stop_iter if "refine_stop_iter" in cfg.model_fields_set else 25_000
    return MCMCStrategy(cap_max=int(cap_max or 1_000_000), refine_start_iter=cfg.refine_start_iter,
                        refine_stop_iter=stop, refine_every=cfg.refine_every, min_opacity=cfg.prune_opa)
