"""Runtime of the Monte Carlo sampling in VMTL vs the deterministic BMTL (supplement Table C.17).

For BMTL and for VMTL with L = M in {1, 10, 50, 100} it measures

* training time per iteration (balanced batch draw, forward with L x M samples,
  backward, Adam update), median over timed iterations after a warm-up;
* inference time per 1000 test rows, both with the test-time predictor
  (posterior means: independent of L and M) and with the Monte Carlo predictive
  distribution (L x M samples averaged, what Table C.17's rising inference
  times suggest the paper timed);

and prints each as a ratio to BMTL. Timings are machine-dependent: read the
ratios, not the absolute numbers; nothing here is asserted by a test.

Run: ``python benchmarks/vmtl_runtime.py [--dataset digit-domains] [--iterations 60]`` (``--smoke``: 3
iterations, L = M in {1, 2}; a check that it runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from negtransfer.data.builtin import load_builtin
from negtransfer.data.domains import with_domain_train_fraction
from negtransfer.models.vmtl import make_model
from negtransfer.train.variational import VariationalConfig, _balanced_batch, domain_tensors


def time_training(model, xs, ys, iterations: int, per_class: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    times = []
    model.train()
    for it in range(iterations + 5):
        start = time.perf_counter()
        bx, by = _balanced_batch(xs, ys, per_class, gen)
        loss, _ = model.loss(bx, by, temperature=1.0, kl_z_weight=1e-7, kl_w_weight=1e-6)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it >= 5:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_inference(model, xs, mc: bool, repeats: int = 5) -> float:
    model.eval()
    n = sum(len(x) for x in xs)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for t, x in enumerate(xs):
                if mc:
                    model.predict_proba_mc(x, t)
                else:
                    torch.softmax(model(x, t), dim=1)
            best = min(best, time.perf_counter() - start)
    return best / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digit-domains")
    parser.add_argument("--train-fraction", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--samples", default="1,10,50,100")
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.iterations, args.samples = 3, "1,2"
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = with_domain_train_fraction(load_builtin(args.dataset, seed=0), args.train_fraction, seed=0)
    cfg = VariationalConfig()
    xs, ys = domain_tensors(ds, "train")
    test_x, _ = domain_tensors(ds, "test")
    n_classes = ds.tasks[0].n_classes
    rows = []
    settings = [("bmtl", None)] + [("vmtl", int(s)) for s in args.samples.split(",")]
    for name, mc in settings:
        extra = {} if mc is None else {"n_samples": mc}
        model = make_model(name, ds.n_features, n_classes, ds.n_tasks, hidden=cfg.hidden, latent=cfg.latent, **extra)
        train_s = time_training(model, xs, ys, args.iterations, cfg.per_class)
        mean_s = time_inference(model, test_x, mc=False)
        mc_s = time_inference(model, test_x, mc=True) if mc is not None else mean_s
        rows.append((name if mc is None else f"vmtl L=M={mc}", train_s, mean_s, mc_s))
    base = rows[0]
    print(f"dataset {args.dataset}, train fraction {args.train_fraction}, batch {cfg.per_class} x C x T, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'model':>18} {'train s/it':>11} {'x BMTL':>7} {'infer s/1000 (mean)':>20} {'x BMTL':>7} "
          f"{'infer s/1000 (MC)':>18} {'x BMTL':>7}")
    for label, tr, me, mc in rows:
        print(f"{label:>18} {tr:11.5f} {tr / base[1]:7.2f} {me:20.5f} {me / base[2]:7.2f} {mc:18.5f} {mc / base[3]:7.2f}")
    for label, tr, _, _ in rows[1:]:  # one line per MC setting, e.g. vmtl_L10_train_time_ratio
        print(f"vmtl_L{label.rsplit('=', 1)[1]}_train_time_ratio: {tr / base[1]:.2f}")


if __name__ == "__main__":
    main()
