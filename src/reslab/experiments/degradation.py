"""The degradation problem (He et al. 2016, Figs. 1 and 6).

Plain and residual nets of two or more depths train on the same data, with the same
budget and recipe; the only difference between a plain net and its ResNet twin is the
skip connection.  The claim: the deeper *plain* net ends with higher training error
(so the problem is optimisation, not overfitting), while the deeper ResNet does not.

Quick scale: Fashion-MNIST, a fixed subset of its training split, a one-cycle schedule
for a few epochs on the CPU.  Full scale: ``--recipe he2016 --dataset cifar10`` with
depths 20/32/44/56/110, which needs CIFAR-10 and, in practice, a GPU.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from reslab.experiments import base

CLAIM = ("He et al. 2016 (§4.2, Figs. 1 and 6): a deeper plain net has higher training error than a "
         "shallower one (56 vs 20 layers): the degradation problem. It is not overfitting, since training "
         "error rises too. With residual learning the deeper net does not degrade.")

# He et al. Table 6, CIFAR-10 test error (%), he2016 recipe; plain nets are shown only as curves (Fig. 6).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}


@dataclass(frozen=True)
class Config:
    scale: str = "quick"
    seeds: int = 1
    depths: tuple[int, ...] = (20, 56)
    kinds: tuple[str, ...] = ("plain", "resnet")
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    recipe: str = "quick"
    width: float = 1.0                  # multiplier of the paper's 16/32/64 filters (1 = paper)
    batch_size: int = 128
    train_subset: int | None = 8000     # images of the training split used (quick scale)
    val_size: int | None = 1000         # images held out of the training split for validation
    test_subset: int | None = 2000      # test images behind each point of the test curve
    iterations: int = 200               # per net, batch 128 (~3 epochs of 8k images)
    lr: float = 0.1                     # peak lr (per batch_size images)
    eval_every: int = 40                # iterations between val/test points on the curves
    log_every: int = 20
    amp: str = "auto"
    device: str = "auto"
    train_error_window: int = 40        # final training error: mean over the last N iterations


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    if scale == "full":
        cfg = Config(scale="full", seeds=1, depths=(20, 32, 44, 56, 110), dataset="cifar10", recipe="he2016",
                     train_subset=None, val_size=5000, test_subset=None, iterations=64_000, eval_every=1000, log_every=200,
                     train_error_window=1000)
    else:
        cfg = Config()
    if seeds is not None:
        cfg = replace(cfg, seeds=seeds)
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def net_name(kind: str, depth: int) -> str:
    return f"{kind}{depth}" if depth in PAPER_TEST_ERROR else f"cifar-{kind}{depth}"


def train_config(cfg: Config, kind: str, depth: int, seed: int):
    from reslab.training.config import resolve

    over = dict(model=net_name(kind, depth), dataset=cfg.dataset, data_dir=cfg.data_dir, seed=seed, amp=cfg.amp,
                device=cfg.device, eval_test=True, eval_every=cfg.eval_every, log_every=cfg.log_every,
                iterations=cfg.iterations, ckpt_every=0, width=cfg.width, batch_size=cfg.batch_size,
                val_size=cfg.val_size, test_subset=cfg.test_subset)
    if cfg.recipe == "quick":
        over.update(train_subset=cfg.train_subset, lr=cfg.lr, schedule="onecycle")
    return resolve(recipe_name=cfg.recipe, overrides=over)


def run(cfg: Config, progress: base.Progress | None = None, out_dir: str | Path | None = None) -> dict:
    from reslab.training import train
    from reslab.training.metrics import read_metrics

    say = progress or (lambda _m: None)
    runs_root = Path(out_dir) if out_dir else Path(".")
    t0 = time.perf_counter()
    nets: dict[str, dict] = {}
    for kind in cfg.kinds:
        for depth in cfg.depths:
            name = net_name(kind, depth)
            per_seed = []
            for seed in range(cfg.seeds):
                say(f"degradation: training {name} (seed {seed}), {cfg.iterations} iterations")
                run_dir = runs_root / "runs" / f"{name}-s{seed}"
                if run_dir.exists():  # a rerun of the experiment trains every net afresh
                    shutil.rmtree(run_dir)
                res = train(train_config(cfg, kind, depth, seed), run_dir, quiet=getattr(progress, "quiet", False))
                if res.interrupted:
                    raise KeyboardInterrupt(f"{name} interrupted at iteration {res.iterations}")
                rows = read_metrics(run_dir)
                train_rows = [r for r in rows if "train_error" in r]
                tail = [r for r in train_rows if r["iteration"] > cfg.iterations - cfg.train_error_window] or train_rows[-1:]
                final_train = sum(r["train_error"] for r in tail) / len(tail)
                evals = [r for r in rows if "test_error" in r]
                per_seed.append({
                    "seed": seed, "final_train_error": final_train,
                    "final_val_error": res.val_error, "final_test_error": res.test_error,
                    "images_per_s": res.images_per_s, "seconds": res.seconds,
                    "curve": {"iteration": [r["iteration"] for r in train_rows],
                              "train_error": [r["train_error"] for r in train_rows],
                              "eval_iteration": [r["iteration"] for r in evals],
                              "val_error": [r.get("val_error") for r in evals],
                              "test_error": [r["test_error"] for r in evals]},
                })
                say(f"degradation: {name} seed {seed}: train error {final_train:.3f}, "
                    f"test error {res.test_error:.3f}, {res.seconds:.0f} s")
            nets[name] = {"kind": kind, "depth": depth, "runs": per_seed,
                          **{f"{k}_mean": _mean([r[k] for r in per_seed]) for k in
                             ("final_train_error", "final_val_error", "final_test_error")},
                          "final_train_error_std": _std([r["final_train_error"] for r in per_seed])}
    return base.make_results("degradation", CLAIM, cfg, {"nets": nets, "paper_test_error": PAPER_TEST_ERROR},
                             judge(cfg, nets), time.perf_counter() - t0)


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _std(xs):
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


def judge(cfg: Config, nets: dict) -> dict:
    """Deepest vs shallowest depth: plain must get worse; the ResNet must not, or much less."""
    lo, hi = min(cfg.depths), max(cfg.depths)
    get = lambda kind, d: nets[net_name(kind, d)]["final_train_error_mean"]  # noqa: E731
    numbers = {}
    if "plain" in cfg.kinds:
        numbers.update({f"plain{lo}_train_error": get("plain", lo), f"plain{hi}_train_error": get("plain", hi)})
    if "resnet" in cfg.kinds:
        numbers.update({f"resnet{lo}_train_error": get("resnet", lo), f"resnet{hi}_train_error": get("resnet", hi)})
    if not {"plain", "resnet"} <= set(cfg.kinds):
        return base.verdict(False, "needs both plain and resnet nets to judge", **numbers)
    plain_gap = get("plain", hi) - get("plain", lo)
    res_gap = get("resnet", hi) - get("resnet", lo)
    degraded = plain_gap > 0.01
    fixed = res_gap < plain_gap / 2
    summary = (f"plain-{hi} ends at training error {get('plain', hi):.3f} vs plain-{lo} {get('plain', lo):.3f} "
               f"(gap {plain_gap:+.3f}); ResNet-{hi} {get('resnet', hi):.3f} vs ResNet-{lo} {get('resnet', lo):.3f} "
               f"(gap {res_gap:+.3f}); n={cfg.seeds} seed(s), {cfg.iterations} iterations on {cfg.dataset}.")
    if not degraded:
        summary = "the deeper plain net did NOT train worse: " + summary
    elif not fixed:
        summary = "the plain net degraded, but the ResNet degraded about as much: " + summary
    return base.verdict(degraded and fixed, summary, plain_gap=plain_gap, resnet_gap=res_gap, **numbers)


def plot(results: dict, out_dir: str | Path) -> list[Path]:
    """Fig. 6 style: thin dashed lines training error, bold lines test error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nets = results["data"]["nets"]
    kinds = [k for k in ("plain", "resnet") if any(n["kind"] == k for n in nets.values())]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), sharey=True, squeeze=False)
    colors = plt.cm.viridis_r
    depths = sorted({n["depth"] for n in nets.values()})
    for ax, kind in zip(axes[0], kinds):
        for i, d in enumerate(depths):
            name = next((k for k, n in nets.items() if n["kind"] == kind and n["depth"] == d), None)
            if name is None:
                continue
            c = colors(0.15 + 0.7 * i / max(1, len(depths) - 1))
            curve = nets[name]["runs"][0]["curve"]
            ax.plot(curve["iteration"], curve["train_error"], "--", lw=0.9, color=c)
            ax.plot(curve["eval_iteration"], curve["test_error"], "-o", lw=2.2, ms=3.5, color=c, label=f"{kind}-{d}")
        ax.set_title(f"{'plain' if kind == 'plain' else 'residual'} nets")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("error (dashed: training, bold: test)")
    cfg = results["config"]
    fig.suptitle(f"Degradation: {cfg['dataset']}, {cfg['iterations']} iterations, recipe {cfg['recipe']}")
    fig.tight_layout()
    path = out / "degradation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def paper_table(results: dict) -> list[tuple[str, float | None, float | None]]:
    """Rows (net, measured test error %, paper's Table 6 test error %)."""
    rows = []
    for name, n in sorted(results["data"]["nets"].items(), key=lambda kv: (kv[1]["kind"], kv[1]["depth"])):
        measured = n["final_test_error_mean"]
        paper = PAPER_TEST_ERROR.get(n["depth"]) if n["kind"] == "resnet" else None
        rows.append((name, None if measured is None else 100 * measured, paper))
    return rows
