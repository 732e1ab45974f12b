"""Densification: gsplat 1.5.3's opacity-reset bug, our fixed strategy's reset, growth and pruning,
driven by the real rasterizer backend's info and real Adam optimizers."""

from __future__ import annotations

import pytest
import torch

from splat_trainer.config import TrainConfig
from splat_trainer.raster_torch import rasterization
from splat_trainer.strategy import (
    FixedDefaultStrategy, StrategyUnavailable, first_reset_step, gsplat_1_5_3_reset_condition, make_strategy,
    opacity_reset_due,
)


@pytest.mark.parametrize("step", [0, 1, 2999, 3000, 3001, 6000, 9000, 12000, 14999])
def test_gsplat_1_5_3_condition_never_fires_and_the_fix_fires_at_multiples(step):
    assert gsplat_1_5_3_reset_condition(step, 3000) is False
    assert opacity_reset_due(step, 3000) is (step > 0 and step % 3000 == 0)


def test_the_1_5_3_expression_is_still_verbatim_in_gsplat_if_installed():
    """Documents why the fix exists: if gsplat 1.5.3 is importable, its source still has the bug."""
    default = pytest.importorskip("gsplat.strategy.default")
    import inspect

    src = inspect.getsource(default.DefaultStrategy.step_post_backward)
    assert "step % self.reset_every == 0 & step > 0" in src


def make_splats(n=40, seed=0, opacity=0.9):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    t = {"means": torch.cat([(r(n, 2) - 0.5) * 1.2, 2 + r(n, 1)], -1), "scales": torch.log(0.02 + r(n, 3) * 0.05),
         "quats": r(n, 4) - 0.5, "opacities": torch.logit(torch.full((n,), opacity)),
         "sh0": (r(n, 1, 3) - 0.5), "shN": torch.zeros(n, 15, 3)}
    splats = {k: torch.nn.Parameter(v) for k, v in t.items()}
    opts = {k: torch.optim.Adam([{"params": [p], "lr": 1e-3, "name": k}], eps=1e-15) for k, p in splats.items()}
    return splats, opts


def one_step(strategy, state, splats, opts, step, packed=False):
    K = torch.tensor([[[20.0, 0, 8.0], [0, 20.0, 6.0], [0, 0, 1]]])
    img, _, info = rasterization(means=splats["means"], quats=splats["quats"], scales=torch.exp(splats["scales"]),
                                 opacities=torch.sigmoid(splats["opacities"]),
                                 colors=torch.cat([splats["sh0"], splats["shN"]], 1), viewmats=torch.eye(4)[None],
                                 Ks=K, width=16, height=12, sh_degree=0, packed=packed)
    strategy.step_pre_backward(splats, opts, state, step, info)
    (img - 0.3).abs().mean().backward()
    for o in opts.values():
        o.step()
        o.zero_grad(set_to_none=True)
    return strategy.step_post_backward(splats, opts, state, step, info, packed=packed)


@pytest.mark.parametrize("packed", [False, True])
def test_opacity_is_reset_at_reset_every_and_its_adam_moments_zeroed(packed):
    strategy = FixedDefaultStrategy(reset_every=4, refine_start_iter=1000, refine_stop_iter=100)
    splats, opts = make_splats()
    state = strategy.initialize_state(scene_scale=1.0)
    for step in range(1, 4):
        events = one_step(strategy, state, splats, opts, step, packed)
        assert events["opacity_reset"] == 0
    assert float(torch.sigmoid(splats["opacities"].detach()).max()) > 0.5
    events = one_step(strategy, state, splats, opts, 4, packed)
    assert events["opacity_reset"] == 1
    ceiling = 2 * strategy.prune_opa
    assert float(torch.sigmoid(splats["opacities"].detach()).max()) <= ceiling + 1e-6
    moments = opts["opacities"].state[splats["opacities"]]
    assert float(moments["exp_avg"].abs().max()) == 0.0 and float(moments["exp_avg_sq"].abs().max()) == 0.0
    # the optimizer now updates the new parameter (not a stale one)
    assert opts["opacities"].param_groups[0]["params"][0] is splats["opacities"]


@pytest.mark.parametrize("reset_start_iter, expected", [(0, 3000), (1, 3000), (3000, 3000), (3001, 6000),
                                                        (7500, 9000), (9000, 9000)])
def test_first_reset_is_the_first_multiple_of_reset_every_from_reset_start_iter(reset_start_iter, expected):
    assert first_reset_step(3000, reset_start_iter) == expected


def test_no_reset_before_reset_start_iter_then_resets_on_the_same_multiples():
    strategy = FixedDefaultStrategy(reset_every=2, reset_start_iter=5, refine_start_iter=1000, refine_stop_iter=100)
    splats, opts = make_splats()
    state = strategy.initialize_state()
    resets = [step for step in range(1, 9) if one_step(strategy, state, splats, opts, step)["opacity_reset"]]
    assert resets == [6, 8]  # 2 and 4 are before reset_start_iter


@pytest.mark.parametrize("reset_start_iter, pruned_at_step_5", [(0, True), (5, False)])
def test_gaussians_too_big_in_world_space_are_pruned_only_after_the_first_reset(reset_start_iter, pruned_at_step_5):
    # reset_every=4: gsplat prunes "too big" Gaussians from step 5 on; with the first reset at 8, not before step 9
    strategy = FixedDefaultStrategy(reset_every=4, reset_start_iter=reset_start_iter, refine_start_iter=0,
                                    refine_every=5, refine_stop_iter=100, grow_grad2d=1e9, prune_scale3d=0.1)
    splats, opts = make_splats()
    with torch.no_grad():
        splats["scales"][:5] = torch.log(torch.tensor(0.5))  # 5 Gaussians larger than 0.1 x scene_scale
    state = strategy.initialize_state(scene_scale=1.0)
    for step in range(1, 5):
        assert one_step(strategy, state, splats, opts, step)["pruned"] == 0
    events = one_step(strategy, state, splats, opts, 5)
    assert (events["pruned"] >= 5) is pruned_at_step_5
    if not pruned_at_step_5:
        assert len(splats["means"]) == 40
        for step in range(6, 11):
            events = one_step(strategy, state, splats, opts, step)
        assert events["pruned"] >= 5  # step 10 (refine) follows the reset at 8


def test_no_reset_after_refine_stop():
    strategy = FixedDefaultStrategy(reset_every=2, refine_start_iter=1000, refine_stop_iter=3)
    splats, opts = make_splats()
    state = strategy.initialize_state()
    assert one_step(strategy, state, splats, opts, 4)["opacity_reset"] == 0
    assert float(torch.sigmoid(splats["opacities"].detach()).min()) > 0.5


@pytest.mark.parametrize("packed", [False, True])
def test_high_gradient_gaussians_grow_and_every_tensor_keeps_its_length(packed):
    # a tiny growth threshold makes every visible Gaussian "high gradient": small ones duplicate, large split
    strategy = FixedDefaultStrategy(grow_grad2d=1e-12, grow_scale3d=0.05, refine_start_iter=0, refine_every=2,
                                    reset_every=1000)
    splats, opts = make_splats()
    state = strategy.initialize_state(scene_scale=1.0)
    one_step(strategy, state, splats, opts, 1, packed)
    events = one_step(strategy, state, splats, opts, 2, packed)
    assert events["duplicated"] > 0 and events["split"] > 0
    n = len(splats["means"])
    assert n == 40 + events["duplicated"] + events["split"] - events["pruned"]
    for name, p in splats.items():
        assert p.shape[0] == n, name
        st = opts[name].state[p]
        assert st["exp_avg"].shape == p.shape and st["exp_avg_sq"].shape == p.shape
    assert state["grad2d"].shape == (n,) and float(state["grad2d"].abs().sum()) == 0.0  # reset after refining


def test_transparent_gaussians_are_pruned():
    strategy = FixedDefaultStrategy(refine_start_iter=0, refine_every=2, grow_grad2d=1e9)
    splats, opts = make_splats(opacity=0.9)
    with torch.no_grad():
        splats["opacities"][:10] = torch.logit(torch.tensor(0.001))
    state = strategy.initialize_state()
    one_step(strategy, state, splats, opts, 1)
    events = one_step(strategy, state, splats, opts, 2)
    assert events["pruned"] >= 10 and len(splats["means"]) == 40 - events["pruned"]


def test_mcmc_needs_the_gsplat_backend():
    with pytest.raises(StrategyUnavailable, match="needs backend=gsplat on a GPU"):
        make_strategy(TrainConfig(strategy="mcmc"), "torch", cap_max=10_000)


def test_default_strategy_takes_the_config_thresholds():
    cfg = TrainConfig(grow_grad2d=0.0005, reset_every=1234, refine_stop_iter=9000, prune_opa=0.01)
    s = make_strategy(cfg, "torch")
    assert (s.grow_grad2d, s.reset_every, s.refine_stop_iter, s.prune_opa) == (0.0005, 1234, 9000, 0.01)
    assert s.reset_start_iter == 4500  # "auto": half the refinement phase
    assert make_strategy(TrainConfig(reset_start_iter=0), "torch").reset_start_iter == 0


def test_absgrad_needs_the_gsplat_backend_and_reaches_the_strategy():
    with pytest.raises(StrategyUnavailable, match="absgrad=true .* needs backend=gsplat"):
        make_strategy(TrainConfig(absgrad=True), "torch")
    assert make_strategy(TrainConfig(absgrad=True), "gsplat").absgrad is True
    assert make_strategy(TrainConfig(), "torch").absgrad is False


@pytest.mark.parametrize("absgrad, expected", [(False, 0.0), (True, 2.0)])
def test_densification_statistics_come_from_absgrad_when_asked(absgrad, expected):
    strategy = FixedDefaultStrategy(absgrad=absgrad)
    means2d = torch.zeros(1, 3, 2, requires_grad=True)
    means2d.grad = torch.zeros(1, 3, 2)  # the signed per-pixel gradients cancelled out
    means2d.absgrad = torch.full((1, 3, 2), 2.0 / (2 ** 0.5))  # their absolute values did not
    info = {"means2d": means2d, "width": 2, "height": 2, "n_cameras": 1, "gaussian_ids": None,
            "radii": torch.ones(1, 3, 2, dtype=torch.int32)}
    state = strategy.initialize_state()
    strategy._update_state({"means": torch.zeros(3, 3)}, state, info)
    assert torch.allclose(state["grad2d"], torch.full((3,), expected))
