"""Train the bundled styles (issue 6) and the StyleBank evidence (issue 5) in one time-boxed run.

Phases, each stopped by its time budget (the trainer's Ctrl-C path: a checkpoint, loadable and
exportable like a model; the equivalent command is ``nst train ... --steps N`` with the N reached,
as the learning rate does not depend on the step budget):

1. bank: the bundled StyleBank, all of BANK_STYLES, at --size, every style's target over --style-orientations
   views but those of --as-given, on their paintings as given (one count per style, ``--style-orientations
   8,1,8,...``): a print's lines keep their direction (the CPU-trained bank that ships got there with a second
   run, ``--tune-style``, before the counts could differ per style);
2. base: a bank of the first three of them; then incremental: the fourth added to it (encoder and
   decoder frozen), probed every --eval-every steps on held-out photos against the bundled bank's
   loss for the same style (the "full training" reference);
3. johnson: one single-style Johnson net per --johnson-styles (default JOHNSON_STYLES), over
   --style-orientations views (those of --as-given: the painting as given).

Training photos: --data (default ../shared/data/train, 1,500 photos; the first bundled models used
the 23 Kodak photos other than HELD_OUT). The Kodak photos are never trained on: HELD_OUT are the
incremental phase's probe and the judged photos of bench/bundled_quality.py.
The descriptor pools by averaging (--pooling avg): with max pooling the nets learn a fine hatching
(docs/bundled-styles.md, "Why the bundled nets hatch"); the style loss is the mean/covariance one (--style-loss
meancov), as in the CPU-trained Starry Night net that replaced the first one (docs/bundled-styles.md, "Longer runs
on the CPU").
Writes OUT/*.ckpt, OUT/results.json and OUT/log.txt as it goes. Export, scoring, sheets: on the CPU after.

    PYTHONPATH=. python3 tools/bundled_styles.py --out $OUT --device cuda --crop-scale 0.5 --style-weight 0.7
    PYTHONPATH=. python3 tools/bundled_styles.py --out /tmp/b --device cpu --size 32 --budget-scale 0.02
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: nstcli and bench/

from bench.stylebank_evidence import StyleProbe, probed_run, timed_run  # noqa: E402 - after the path set-up
from nstcli import data, generators, images, train  # noqa: E402
from nstcli.checkpoint import build_trained_generator, load_checkpoint  # noqa: E402
from nstcli.settings import TrainConfig, get_setting, with_settings  # noqa: E402
from nstcli.train_plan import RUN_SETTINGS, add_styles_config  # noqa: E402

BANK_STYLES = {  # preset name: painting (the first four: the issue-5 evidence, in this order)
    "starry-night": "vangogh_starry_night",
    "great-wave": "hokusai_great_wave",
    "the-kiss": "klimt_the_kiss",
    "shipwreck": "turner_shipwreck_of_the_minotaur",
    "night-cafe": "vangogh_night_cafe",
    "tahitian-women": "gauguin_tahitian_women",
    "still-life-apples": "cezanne_still_life_apples",
    "river-landscape": "renoir_river_landscape",
}
JOHNSON_STYLES = ("starry-night", "great-wave", "the-kiss", "shipwreck")
HELD_OUT = ("kodim04.png", "kodim08.png", "kodim23.png")
BUDGETS = {"bank": 165.0, "base": 55.0, "incremental": 40.0, "johnson": 35.0}  # seconds on an H100
# Styles trained on their painting as given, not over its turned views (--as-given): the CPU-trained models
# that ship found the Great Wave's ink lines lost to a fine cross-hatch with eight views (docs/bundled-styles.md,
# "The bank with eight orientations"), the oil paintings' one-direction hatching gone with them.
AS_GIVEN = ("great-wave",)
BANK_OPTIONS = {"width": 0.5, "output_kernel": 3}  # ~ the peer's cost per pixel on onnxruntime's CPU kernels
# Width 0.375 with 4 residual blocks: 0.89-0.97x the peer's time at 512 px (bench/johnson_speed.py), where
# width 0.5 with 5 blocks took 1.25-1.35x; on Starry Night it looked nearly the same (docs/bundled-styles.md,
# "Longer runs on the CPU").
JOHNSON_OPTIONS = {"width": 0.375, "residual_blocks": 4, "output_kernel": 3}


def held_out_crops(photos: Path, size: int) -> torch.Tensor:
    crops = [data.random_crop(images.read_image(photos / name), size, torch.Generator().manual_seed(0)) for name in HELD_OUT]
    return torch.cat([images.to_tensor(crop) for crop in crops])


def make_config(args: argparse.Namespace, arch: str, names: list[str], options: dict, as_given: tuple[str, ...] = ()) -> TrainConfig:
    """``as_given``: styles trained on the painting as given (one orientation), the rest over --style-orientations views."""
    styles = [str((args.paintings / f"{BANK_STYLES[name]}.jpg").resolve()) for name in names]
    orientations = [1 if name in as_given else args.style_orientations for name in names]
    arch_options = {**options, "styles": len(names)} if arch == "stylebank" else dict(options)
    return with_settings(TrainConfig(), dict(
        style=styles, names=names if arch == "stylebank" else None, data=str(args.data), arch=arch,
        arch_options=arch_options, image_size=args.size, batch_size=args.batch_size, steps=1_000_000,
        workers=args.workers, device=args.device, log_every=10, checkpoint_every=0, style_weight=args.style_weight,
        style_scale=args.style_scale, crop_scale=args.crop_scale, pooling=args.pooling,
        style_loss=args.style_loss, style_orientations=orientations if len(set(orientations)) > 1 else orientations[:1],
    ))  # fmt: skip


def bank_blend(text: str, names: list[str]) -> list[float] | None:
    """'starry-night=1.5,the-kiss=0.8' -> each bank's style-loss weight (``--style-blend``; 1 for the others)."""
    if not text:
        return None
    weights = {name: float(value) for name, _, value in (item.partition("=") for item in text.split(","))}
    unknown = set(weights) - set(names)
    if unknown:
        raise SystemExit(f"--bank-blend: unknown styles {sorted(unknown)} (choose from {', '.join(names)})")
    return [weights.get(name, 1.0) for name in names]


def run_for(seconds: float, trainer: train.Trainer, checkpoint: Path, slim: bool = False) -> dict:
    """Train until ``seconds`` have passed; the state goes to ``checkpoint`` (as on Ctrl-C).

    ``slim`` drops the optimiser state (2/3 of the file): the checkpoint still exports, but cannot resume.
    """
    result = timed_run(trainer, checkpoint.with_suffix(".done.pt"), checkpoint, stop_after=seconds)
    if slim:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        del state["optimizer"]
        torch.save(state, checkpoint)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"), help="where HELD_OUT are")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train"), help="training photos")
    parser.add_argument("--pooling", default="avg", help="the descriptor's pooling: avg or max (the first models')")
    parser.add_argument("--style-loss", default="meancov", help="gram or meancov (the first models': gram)")
    parser.add_argument("--paintings", type=Path, default=Path("../shared/data/paintings"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every phase's seconds")
    parser.add_argument("--budget", action="append", default=[], help="PHASE=SECONDS, before --budget-scale")
    parser.add_argument("--style-weight", type=float, default=2.0)
    parser.add_argument("--style-scale", type=float, default=2.0)
    parser.add_argument("--crop-scale", type=float, default=1.0)
    parser.add_argument("--bank-layers", type=int, default=2, help="3x3 conv blocks per bank of the bundled bank")
    parser.add_argument("--bank-blend", default="", help="the bank's per-style style-loss weights, NAME=W,... (1 each)")
    parser.add_argument("--johnson-styles", default=",".join(JOHNSON_STYLES), help="comma-separated preset names")
    parser.add_argument("--style-orientations", type=int, default=8, help="1, 2 or 8 views of each painting (1: the first models')")
    parser.add_argument("--as-given", default=",".join(AS_GIVEN), help="styles trained on the painting as given (comma-separated)")
    parser.add_argument("--slim", action="store_true", help="checkpoints without optimiser state (export only)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--skip", default="", help="comma-separated phases to skip (bank, incremental, johnson)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.data = args.data.resolve()
    given = {phase: float(seconds) for phase, seconds in (text.split("=") for text in args.budget)}
    budget = {phase: given.get(phase, seconds) * args.budget_scale for phase, seconds in BUDGETS.items()}
    results: dict = {"settings": {key: str(value) for key, value in vars(args).items()}, "budgets": budget,
                     "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}  # fmt: skip
    log = (args.out / "log.txt").open("a")

    def save(message: str) -> None:
        print(message, flush=True)
        log.write(message + "\n")
        log.flush()
        (args.out / "results.json").write_text(json.dumps(results, indent=1))

    names = list(BANK_STYLES)
    skip = set(args.skip.split(","))
    as_given = tuple(name for name in args.as_given.split(",") if name)
    if "bank" not in skip:
        bank_options = {**BANK_OPTIONS, "bank_layers": args.bank_layers}
        bank_cfg = with_settings(make_config(args, "stylebank", names, bank_options, as_given),
                                 {"style_blend": bank_blend(args.bank_blend, names)})  # fmt: skip
        bank_run = run_for(budget["bank"], train.Trainer(bank_cfg), args.out / "bank.ckpt", args.slim)
        results["bank"] = {"config": bank_cfg.to_dict(), **bank_run}
        save(f"bank: {results['bank']['steps']} steps, {results['bank']['seconds_per_step']:.4f} s/step")

    if "incremental" not in skip:
        base_cfg = make_config(args, "stylebank", names[:3], BANK_OPTIONS)
        results["base"] = run_for(budget["base"], train.Trainer(base_cfg), args.out / "base.ckpt")
        save(f"base: {results['base']['steps']} steps")
        base = load_checkpoint(args.out / "base.ckpt")
        new_cfg = make_config(args, "stylebank", names[3:4], BANK_OPTIONS)  # its run settings too (else: defaults)
        run = {key: get_setting(new_cfg, key) for key in RUN_SETTINGS}
        add_cfg = add_styles_config(TrainConfig.from_dict(base["config"]), [new_cfg.style[0]], [names[3]], run)  # fmt: skip
        probe = StyleProbe(add_cfg, 3, photos=held_out_crops(args.photos, args.size))
        full_model, _, _ = build_trained_generator(load_checkpoint(args.out / "bank.ckpt"))
        results["full_reference"] = probe(full_model.to(probe.trainer.device))
        results["incremental"] = probed_run(train.Trainer(add_cfg, base=base), probe, args.eval_every, args.out / "incremental.done.pt",
                                            args.out / "incremental.ckpt", stop_after=budget["incremental"])  # fmt: skip
        save(f"incremental: {results['incremental']['steps']} steps; reference {results['full_reference']}")
        for row in results["incremental"]["curve"]:
            save(f"  step {row['step']:5d} {row['seconds']:6.1f} s style {row['style']:.4g} content {row['content']:.4g}")

    if "johnson" not in skip:
        for name in args.johnson_styles.split(","):
            cfg = make_config(args, "johnson", [name], JOHNSON_OPTIONS, as_given)
            checkpoint = args.out / f"johnson-{name}.ckpt"
            results[f"johnson-{name}"] = run_for(budget["johnson"], train.Trainer(cfg), checkpoint, args.slim)
            save(f"johnson {name}: {results[f'johnson-{name}']['steps']} steps")

    if "bank" not in skip:  # seconds per 512 x 512 image, PyTorch on this device (one style, eval mode)
        model, _, multiple = build_trained_generator(load_checkpoint(args.out / "bank.ckpt"))
        device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
        model, image = model.to(device), torch.rand(1, 3, 512, 512, device=device)
        weights = torch.eye(len(names), device=device)[0]
        times = []
        with torch.no_grad():
            for _ in range(12):
                begin = time.perf_counter()
                generators.stylise(model, image, multiple, weights)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - begin)
        results["bank_seconds_per_image_512"] = statistics.median(times[2:])
        save(f"bank: {results['bank_seconds_per_image_512'] * 1e3:.2f} ms per 512x512 image ({device})")


if __name__ == "__main__":
    main()
