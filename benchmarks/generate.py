"""Overhead of ``aigiqa generate run`` over bare diffusers pipeline calls (tiny random pipeline).

    python benchmarks/generate.py [--images 48] [--steps 4] [--batch 4] [--size 64] [--rounds 3]

Builds a tiny random Stable Diffusion pipeline (``aigiqa.testing.pipelines``), plans
``--images`` images of it (one size, ``--steps`` steps, CFG 7.5), then times (a) the bare
pipeline: loaded once, called on the same batches with the same per-image generators, and (b)
``run_plan`` into a fresh folder (loading, weights sha256, NaN/black checks, PNG encoding,
atomic writes, the log and the tables). Overhead = runner time / bare time - 1, in process CPU
time (a shared machine disturbs it less than wall time; wall in brackets), with and without the
one-time pipeline load; the best of ``--rounds`` alternated rounds of each. Goal: <= 5 %
without the load. The last line times, inside one run, what ``run_plan`` spends outside its
pipeline calls and loads (PNG, checks, log, tables), which machine noise between runs does not
blur.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    from diffusers import DiffusionPipeline

    from aigiqa.generate import make_plan, read_generators, run_plan, write_plan
    from aigiqa.generate.run import batches
    from aigiqa.testing.pipelines import tiny_sd_pipeline

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tiny_sd_pipeline(tmp / "pipe")
        (tmp / "g.toml").write_text(
            f'[generators.tiny]\npipeline = "{folder}"\ncount = {args.images}\n'
            f'steps = [{args.steps}]\ncfg = [7.5]\nsizes = ["{args.size}x{args.size}"]\n')
        prompts = [(f"a photo of thing {i}", "") for i in range(args.images)]
        plan = make_plan(prompts, read_generators(tmp / "g.toml"), seed=0)
        write_plan(plan, tmp / "plan.csv")

        def clocks() -> tuple[float, float]:
            return time.process_time(), time.perf_counter()

        # warm-up (first calls allocate and pick kernels), not timed
        run_plan(tmp / "plan.csv", tmp / "warm", device="cpu", batch_size=args.batch)

        def bare() -> tuple[tuple[float, float], tuple[float, float]]:
            c0, w0 = clocks()
            pipe = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
            pipe.set_progress_bar_config(disable=True)
            c1, w1 = clocks()
            for batch in batches(plan, args.batch):
                gens = [torch.Generator("cpu").manual_seed(int(s)) for s in batch["seed"]]
                pipe(prompt=list(batch["prompt"]), num_inference_steps=args.steps,
                     guidance_scale=7.5, height=args.size, width=args.size, generator=gens,
                     output_type="np")
            c2, w2 = clocks()
            return (c1 - c0, w1 - w0), (c2 - c1, w2 - w1)

        def ours(i: int) -> tuple[float, float]:
            c3, w3 = clocks()
            result = run_plan(tmp / "plan.csv", tmp / f"db{i}", device="cpu",
                              batch_size=args.batch)
            c4, w4 = clocks()
            assert result.generated == args.images, result
            inside.append((w4 - w3 - result.seconds - result.load_seconds) / result.seconds)
            return c4 - c3, w4 - w3

        inside: list[float] = []

        rounds = [(bare(), ours(i)) for i in range(args.rounds)]  # alternated; best of each
        bare_load = min((r[0][0] for r in rounds), key=lambda t: t[0])
        bare_calls = min((r[0][1] for r in rounds), key=lambda t: t[0])
        runner = min((r[1] for r in rounds), key=lambda t: t[0])

    n = args.images
    print(f"{n} images {args.size}x{args.size}, {args.steps} steps, batch {args.batch}, CPU "
          f"({torch.get_num_threads()} threads)")
    print(f"bare pipeline calls: {bare_calls[0] / n:.3f} s CPU/image "
          f"[{bare_calls[1] / n:.3f} s wall]; load {bare_load[0]:.2f} s CPU")
    print(f"generate run:        {runner[0] / n:.3f} s CPU/image [{runner[1] / n:.3f} s wall] "
          "(load, sha256, checks, PNG, log, tables included)")
    with_load = runner[0] / (bare_calls[0] + bare_load[0]) - 1
    without = (runner[0] - bare_load[0]) / bare_calls[0] - 1
    wall = (runner[1] - bare_load[1]) / bare_calls[1] - 1
    print(f"overhead: {100 * without:+.1f} % CPU without the one-time load [{100 * wall:+.1f} % "
          f"wall], {100 * with_load:+.1f} % CPU against bare calls + load")
    print(f"runner's own time outside pipeline calls and loading (one process, wall): "
          f"{100 * min(inside):+.1f} % of its pipeline calls (best of {len(inside)})")


if __name__ == "__main__":
    main()
