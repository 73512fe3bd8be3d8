"""Cost of one training step with and without per-step task-affinity tracking.

Default setup: the yeast MTL model of negtransfer (shared encoder 103 -> 32 -> 16
with ReLU, 14 sigmoid task heads, BCE), batch 32, SGD with momentum 0.9.
Each variant runs a whole step (forward, gradients, optimizer step); times are
medians over repeats of the mean per-step time. Printed ratios are relative to
the plain step.

Variants
--------
plain                 loss.sum().backward(); opt.step()
tracked (batched)     AffinityTracker.step: ONE batched backward (shared + heads),
                      affinity from the optimizer state, summed grads reused,
                      step recorded (the full user-loop API)
batched incl. heads   the same without the tracker's bookkeeping: functional
                      per_task_and_summed_gradients + affinity + summed grads
batched + head pass   batched backward over the shared params only (graph kept),
                      then a second plain backward for the head gradients
loop of T backward    T separate backward passes (what public ETAP/TAG code does)
tracked every=10      AffinityTracker(every=10).step, amortised over 10 steps
TAG lookahead         batched grads + T extra forward passes (tag_lookahead_affinity)

Usage: python benchmarks/affinity_step_cost.py [--threads 1] [--hidden 32,16] [--tasks 14] [--smoke]
(``--smoke``: 4 tasks, 1 repeat of 5 steps; a check that it runs.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from negtransfer.affinity.tracker import (
    AffinityTracker,
    optimizer_task_updates,
    per_task_and_summed_gradients,
    per_task_gradients,
    step_affinity_from_updates,
    tag_lookahead_affinity,
)


def build(n_in, hidden, n_tasks, seed=0):
    torch.manual_seed(seed)
    layers, width = [], n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    encoder = torch.nn.Sequential(*layers)
    heads = torch.nn.Linear(width, n_tasks)
    return encoder, heads


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=int, default=103)
    ap.add_argument("--hidden", default="32,16")
    ap.add_argument("--tasks", type=int, default=14)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300, help="steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = ap.parse_args(argv)
    if args.smoke:
        args.tasks, args.steps, args.repeats = 4, 5, 1
    torch.set_num_threads(args.threads)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    T = args.tasks

    encoder, heads = build(args.features, hidden, T)
    shared, head_params = list(encoder.parameters()), list(heads.parameters())
    opt = torch.optim.SGD(shared + head_params, lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.features, generator=g)
    y = (torch.rand(args.batch, T, generator=g) > 0.5).float()

    def task_losses():
        out = heads(encoder(x))
        return torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none").mean(0)

    def plain():
        opt.zero_grad()
        task_losses().sum().backward()
        opt.step()

    tracker = AffinityTracker(T)

    def tracked():
        opt.zero_grad()
        tracker.step(task_losses(), shared, opt, head_params)
        opt.step()

    def batched_with_heads():
        opt.zero_grad()
        L = task_losses()
        per_task, g_shared, g_heads = per_task_and_summed_gradients(L, shared, head_params)
        U, _ = optimizer_task_updates(opt, shared, per_task)
        step_affinity_from_updates(per_task, L.detach(), U)
        for p, gr in zip(shared + head_params, g_shared + g_heads, strict=True):
            p.grad = gr
        opt.step()

    def batched_plus_head_pass():
        opt.zero_grad()
        L = task_losses()
        per_task = per_task_gradients(L, shared, retain_graph=True)
        head_grads = torch.autograd.grad(L.sum(), head_params)
        U, _ = optimizer_task_updates(opt, shared, per_task)
        step_affinity_from_updates(per_task, L.detach(), U)
        for p, gr in zip(shared, per_task, strict=True):
            p.grad = gr.sum(0)
        for p, gr in zip(head_params, head_grads, strict=True):
            p.grad = gr
        opt.step()

    def loop():
        opt.zero_grad()
        L = task_losses()
        params = shared + head_params
        per = [torch.autograd.grad(L[t], params, retain_graph=t < T - 1) for t in range(T)]
        per_task = [torch.stack([per[t][k] for t in range(T)]) for k in range(len(shared))]
        U, _ = optimizer_task_updates(opt, shared, per_task)
        step_affinity_from_updates(per_task, L.detach(), U)
        for k, p in enumerate(params):
            p.grad = sum(per[t][k] for t in range(T))
        opt.step()

    sparse = AffinityTracker(T, every=10)

    def tracked_every10():
        opt.zero_grad()
        sparse.step(task_losses(), shared, opt, head_params)
        opt.step()

    def tag():
        opt.zero_grad()
        tag_lookahead_affinity(task_losses, shared, optimizer=opt)
        task_losses().sum().backward()
        opt.step()

    variants = [
        ("plain", plain),
        ("tracked (batched)", tracked),
        ("batched incl. heads", batched_with_heads),
        ("batched + head pass", batched_plus_head_pass),
        (f"loop of {T} backward", loop),
        ("tracked every=10", tracked_every10),
        ("TAG lookahead", tag),
    ]
    # Warm up every variant, then interleave repeats so drift hits all alike.
    for _, fn in variants:
        for _ in range(30):
            fn()
    times = {name: [] for name, _ in variants}
    for _ in range(args.repeats):
        for name, fn in variants:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - t0) / args.steps)

    base = statistics.median(times["plain"])
    print(
        f"MLP {args.features} -> {' -> '.join(map(str, hidden))}, {T} sigmoid heads, batch {args.batch}, "
        f"SGD momentum 0.9, torch {torch.__version__}, {args.threads} thread(s)"
    )
    print(f"{'variant':<24}{'us/step':>10}{'x plain':>10}")
    for name, _ in variants:
        med = statistics.median(times[name])
        print(f"{name:<24}{med * 1e6:>10.1f}{med / base:>10.2f}")
    loop_t = statistics.median(times[f"loop of {T} backward"])
    batched_t = statistics.median(times["tracked (batched)"])
    print(f"loop / batched = {loop_t / batched_t:.2f}")


if __name__ == "__main__":
    main()
