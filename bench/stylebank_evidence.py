"""StyleBank evidence run: K paintings on a folder of photos, full vs incremental training, contact sheet.

1. full: one bank of all K styles trained together ((T+1) alternation) for --steps steps;
2. base: a bank of the first K-1 styles, same steps; then incremental: the K-th style added with
   --add-steps steps, encoder/decoder frozen (only its bank trains);
3. the K-th style's loss (content, style at the training layers) on fixed photo crops, every
   --eval-every incremental steps, against the full model's bank for the same style: the steps and
   seconds the new bank needs to come within 10% of the full model's style loss;
4. a contact sheet: rows = photos, columns = the photo, each style of the full bank, a 50/50 mix of
   the first two (linear bank fusion); seconds per image (PyTorch) at a long side of 2 x --size.

    PYTHONPATH=. OMP_NUM_THREADS=1 python3 bench/stylebank_evidence.py --out /tmp/sb_evidence \\
        --size 64 --steps 480 --add-steps 160 --eval-every 40 --device cpu          # ~5 min here
    PYTHONPATH=. python3 bench/stylebank_evidence.py --out /tmp/sb_gpu --size 256 --steps 4000 \\
        --add-steps 1000 --eval-every 100 --batch-size 4 --width 1 --workers 4 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path

import torch

from nstcli import generators, images, report, train
from nstcli.checkpoint import build_trained_generator, load_checkpoint
from nstcli.settings import TrainConfig, get_setting, with_settings
from nstcli.train_plan import RUN_SETTINGS, add_styles_config

PAINTINGS = ("vangogh_starry_night", "hokusai_great_wave", "klimt_the_kiss", "turner_shipwreck_of_the_minotaur")


def config(args: argparse.Namespace, styles: list[Path], steps: int) -> TrainConfig:
    names = [path.stem.split("_")[0] + "_" + path.stem.split("_")[-1] for path in styles]
    return with_settings(TrainConfig(), dict(
        style=[str(path) for path in styles], names=names, data=str(args.photos), arch="stylebank",
        arch_options={"styles": len(styles), "width": args.width}, image_size=args.size, batch_size=args.batch_size,
        steps=steps, workers=args.workers, device=args.device, log_every=10, checkpoint_every=0,
        style_weight=args.style_weight, lr=args.lr, warmup_steps=args.warmup_steps,
    ))  # fmt: skip


class StyleProbe:
    """The loss of one bank on fixed photo crops, with the training objective of ``cfg``."""

    def __init__(self, cfg: TrainConfig, style: int, count: int = 4, photos: torch.Tensor | None = None):
        self.trainer = train.Trainer(cfg)  # builds the loss, the targets and the dataset
        self.style = style
        if photos is None:  # the first training crops
            photos = torch.stack([self.trainer.dataset[0, index][0] for index in range(count)])
        self.photos = photos.to(self.trainer.device)
        self.loss_fn = self.trainer.objective.loss_fn  # one Gram target per bank
        self.loss_fn.set_content(self.photos)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        terms = self.loss_fn(model.eval().branch(self.photos, self.style), self.style)
        model.train(was_training)
        return {"content": terms.content.item(), "style": terms.style.item()}


def timed_run(trainer: train.Trainer, model_path: Path, checkpoint_path: Path, on_step=None,
              stop_after: float | None = None) -> dict:  # fmt: skip
    """Run ``trainer`` (then close it) and time it: steps, seconds, median seconds per step after the first 10%.

    ``stop_after`` seconds: stop then as Ctrl-C does (the state goes to ``checkpoint_path``).
    """
    stamps: list[float] = []

    def progress(item: train.Progress) -> None:
        stamps.append(time.perf_counter())
        if on_step:
            on_step(item.step)

    timer = threading.Timer(stop_after, os.kill, (os.getpid(), signal.SIGINT)) if stop_after else None
    start = time.perf_counter()
    if timer:
        timer.start()
    try:
        result = trainer.run(Path(model_path), Path(checkpoint_path), on_progress=progress)
    finally:
        if timer:
            timer.cancel()
        trainer.close()
    steady = stamps[len(stamps) // 10 :]
    return {
        "steps": result.steps, "seconds": time.perf_counter() - start,
        "seconds_per_step": statistics.median([b - a for a, b in zip(steady, steady[1:])] or [float("nan")]),
        "images_per_second": result.history[-1]["images_per_second"] if result.history else 0.0,
        "final_losses": result.history[-1] if result.history else {},
    }  # fmt: skip


def probed_run(trainer: train.Trainer, probe: StyleProbe, eval_every: int, model_path: Path, checkpoint_path: Path,
               stop_after: float | None = None) -> dict:  # fmt: skip
    """:func:`timed_run` plus ``probe`` of the model at step 0 and every ``eval_every`` steps (as "curve")."""
    curve = [{"step": 0, "seconds": 0.0, **probe(trainer.model)}]
    start = time.perf_counter()

    def on_step(step: int) -> None:
        if step % eval_every == 0:
            curve.append({"step": step, "seconds": time.perf_counter() - start, **probe(trainer.model)})

    return {**timed_run(trainer, model_path, checkpoint_path, on_step, stop_after), "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--paintings", type=Path, default=Path("../shared/data/paintings"))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--add-steps", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--style-weight", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=0, help="full and base runs: steps without style loss")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sheet-photos", type=int, default=3)
    args = parser.parse_args()
    args.photos, args.paintings = args.photos.resolve(), args.paintings.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    styles = [args.paintings / f"{name}.jpg" for name in PAINTINGS]
    results: dict = {"settings": {key: str(value) for key, value in vars(args).items()}}

    full_cfg = config(args, styles, args.steps)
    full = timed_run(train.Trainer(full_cfg), args.out / "full.pt", args.out / "full.ckpt")
    seconds, per_step = full["seconds"], full["seconds_per_step"]
    results["full"] = {"styles": len(styles), "steps": args.steps, "seconds": seconds, "seconds_per_step": per_step}
    print(f"full bank ({len(styles)} styles): {args.steps} steps in {seconds:.1f} s, {per_step:.3f} s/step", flush=True)
    full_model, _, multiple = build_trained_generator(load_checkpoint(args.out / "full.pt"))
    probe = StyleProbe(full_cfg, len(styles) - 1)
    target = probe(full_model)
    results["full"]["new_style_loss"] = target

    base_run = timed_run(train.Trainer(config(args, styles[:-1], args.steps)), args.out / "base.pt", args.out / "base.ckpt")
    seconds, per_step = base_run["seconds"], base_run["seconds_per_step"]
    results["base"] = {"styles": len(styles) - 1, "steps": args.steps, "seconds": seconds, "seconds_per_step": per_step}
    print(f"base bank ({len(styles) - 1} styles): {args.steps} steps in {seconds:.1f} s", flush=True)
    base = load_checkpoint(args.out / "base.pt")
    saved = TrainConfig.from_dict(base["config"])
    run = {**{key: get_setting(full_cfg, key) for key in RUN_SETTINGS}, "steps": args.add_steps}  # else: defaults
    add_cfg = add_styles_config(saved, [str(styles[-1])], [full_cfg.names[-1]], run)

    trainer = train.Trainer(add_cfg, base=base)  # run the incremental training by hand to probe it as it goes
    added = probed_run(trainer, probe, args.eval_every, args.out / "incremental.pt", args.out / "incremental.ckpt")
    curve, add_per_step = added["curve"], added["seconds_per_step"]
    reached = next((row for row in curve if row["style"] <= 1.1 * target["style"]), None)
    results["incremental"] = {"steps": args.add_steps, "seconds_per_step": add_per_step, "curve": curve,
                              "within_10pct_of_full": reached}  # fmt: skip
    print(f"incremental ({args.add_steps} steps, {add_per_step:.3f} s/step): new-style loss vs full bank's "
          f"{target['style']:.4g} (content {target['content']:.4g}):", flush=True)  # fmt: skip
    for row in curve:
        print(f"  step {row['step']:5d}  {row['seconds']:7.1f} s  style {row['style']:.4g}  content {row['content']:.4g}")
    print(f"  within 10% of the full bank's style loss: {reached and (reached['step'], round(reached['seconds'], 1))}")

    # contact sheet of the full bank + seconds per image
    names = full_cfg.style_names()
    photo_files = sorted(args.photos.glob("kodim*.png"))[: args.sheet_photos]
    rows, times = [], []
    for path in photo_files:
        photo = images.to_tensor(images.resize_long_side(images.read_image(path), args.size * 2))
        row = [(images.from_tensor(photo), [path.stem])]
        mixes = [torch.eye(len(names))[k] for k in range(len(names))] + [torch.tensor([0.5, 0.5, 0.0, 0.0])]
        labels = names + [f"{names[0]} 50 / {names[1]} 50"]
        for weights, label in zip(mixes, labels):
            with torch.no_grad():
                begin = time.perf_counter()
                out = generators.stylise(full_model, photo, multiple, weights)
                times.append(time.perf_counter() - begin)
            row.append((images.from_tensor(out.clamp(0, 1)), [label]))
        rows.append(row)
    sheet = report.contact_sheet(rows, cell=args.size * 2, title="StyleBank: one model, 4 styles and a 50/50 mix")
    sheet.save(args.out / "contact_sheet.png")
    incremental_model, _, _ = build_trained_generator(load_checkpoint(args.out / "incremental.pt"))
    photo = images.to_tensor(images.resize_long_side(images.read_image(photo_files[0]), args.size * 2))
    with torch.no_grad():
        pair = [generators.stylise(model, photo, multiple, torch.eye(len(names))[-1]) for model in (full_model, incremental_model)]
    report.contact_sheet([[(images.from_tensor(photo), ["photo"]), (images.from_tensor(pair[0].clamp(0, 1)), ["full bank"]),
                           (images.from_tensor(pair[1].clamp(0, 1)), ["incremental bank"])]],
                         cell=args.size * 2, title=f"{names[-1]}: full vs incremental").save(args.out / "incremental.png")  # fmt: skip
    results["seconds_per_image"] = {"size": f"{args.size * 2} long side", "median": statistics.median(times)}
    print(f"seconds per image ({args.size * 2} px long side, CPU/GPU as run): {statistics.median(times):.4f}")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
