"""Write styles/NAME/preset.toml for the bundled paintings from their training checkpoints and judged losses.

    PYTHONPATH=. python3 tools/write_presets.py CHECKPOINTS_DIR [QUALITY.json] [--card KIND=TEXT ...]

CHECKPOINTS_DIR holds bank.ckpt (and bank-tuned.ckpt, its --as-given banks tuned: the bank that
ships when present) and johnson-NAME.ckpt from tools/bundled_styles.py (export them into styles/ first:
the bank as styles/stylebank.onnx, fp32; johnson as styles/NAME/johnson.onnx,
fp16). QUALITY.json is bench/bundled_quality.py's output at 512 px: run that once the models
are in place, then this again to add the judged losses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bundled_styles import BANK_STYLES, HELD_OUT
from nstcli.settings import TrainConfig, compact_counts, get_setting, orientation_counts

STYLES = Path(__file__).resolve().parents[1] / "styles"
PAINTINGS = {  # preset name: (title, artist, lifespan, year), from shared/data/PROVENANCE.md
    "starry-night": ("The Starry Night", "Vincent van Gogh", "1853-1890", "1889"),
    "great-wave": ("The Great Wave off Kanagawa (woodblock print)", "Katsushika Hokusai", "1760-1849", "c. 1830-1832"),
    "the-kiss": ("The Kiss (Der Kuss)", "Gustav Klimt", "1862-1918", "1907-1908"),
    "shipwreck": ("The Shipwreck of the Minotaur", "J. M. W. Turner", "1775-1851", "c. 1810"),
    "night-cafe": ("The Night Café", "Vincent van Gogh", "1853-1890", "1888"),
    "tahitian-women": ("Tahitian scene with three women (title not verified)", "Paul Gauguin", "1848-1903", "1890s"),
    "still-life-apples": ("Still life with apples (title not verified)", "Paul Cézanne", "1839-1906", "c. 1877-1890"),
    "river-landscape": ("River landscape (title not verified)", "Pierre-Auguste Renoir", "1841-1919", "c. 1870s-1890s"),
}
EXPORT_PRECISION = {"stylebank": "fp32", "johnson": "fp16"}  # fp16 banks ran 10% slower on the CPU provider


def quoted(value: object) -> str:
    return json.dumps(value)  # a TOML basic string or number


def inline_toml(value: object) -> str:
    """A TOML value: a string, number or boolean, or a table of them written inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {quoted(item)}" for key, item in value.items()) + " }"
    return quoted(value)


def train_command(config: TrainConfig, kind: str, steps: int) -> str:
    """The ``nst train`` + ``nst export`` commands equivalent to the time-boxed run (lr does not depend on steps)."""
    options = config.arch_options
    if kind == "stylebank":
        styles = " ".join(f"--style-image {name}={BANK_STYLES[name]}.jpg" for name in config.style_names())
    else:
        styles = f"--style-image {Path(config.style[0]).name}"
    loss = config.loss
    blend = loss.style_blend  # the bank's per-style weights, when not all 1
    flags = (
        f"--image-size {config.image_size} --batch-size {config.batch_size} --style-weight {loss.style_weight:g} "
        f"--style-scale {loss.style_scale:g} --crop-scale {config.crop_scale:g} "
        + (f"--style-blend {','.join(f'{weight:g}' for weight in blend)} " if blend else "")
        + (f"--pooling {loss.pooling} " if loss.pooling != "max" else "")
        + (f"--style-loss {loss.style_loss} " if loss.style_loss != "gram" else "")
        + (f"--style-orientations {','.join(map(str, loss.style_orientations))} " if max(loss.style_orientations) > 1 else "")
        + f"--width {options['width']:g} --output-kernel {options['output_kernel']} "
        + (f"--residual-blocks {options['residual_blocks']} " if "residual_blocks" in options else "")
        + (f"--bank-layers {options['bank_layers']} " if "bank_layers" in options else "")
        + f"--checkpoint-every 0 --steps {steps} --device cuda"
    )
    return f"nst train --arch {kind} {styles} --data PHOTOS {flags} -o {kind}.pt"


def tune_command(config: TrainConfig, steps: int) -> str:
    """The ``nst train --tune-style`` run that trained ``config.train_banks`` further, from the bank of the command before."""
    banks = config.train_banks or []
    names = ",".join(config.style_names()[bank] for bank in banks)
    counts = compact_counts([orientation_counts(config.loss.style_orientations, len(config.style))[bank] for bank in banks])
    return (f"nst train --resume stylebank.pt --tune-style {names} --style-orientations {','.join(map(str, counts))} "
            f"--steps {steps} --device cuda -o tuned.pt")  # fmt: skip


def training_table(checkpoint: Path, kind: str, card: str, base: Path | None = None) -> list[str]:
    """The [training.KIND] table of ``checkpoint``; ``base``: the bank it tuned (its run comes first in the command)."""
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")
    config, steps = TrainConfig.from_dict(state["config"]), state["step"]  # any layout; defaults for newer fields
    seconds = state["history"][-1]["seconds"]
    command = train_command(config, kind, steps)
    model = f"{kind}.pt"
    if base is not None:
        base_state = torch.load(base, weights_only=True, map_location="cpu")
        command = train_command(TrainConfig.from_dict(base_state["config"]), kind, base_state["step"]) + " && " + tune_command(config, steps)
        steps, seconds, model = base_state["step"] + steps, base_state["history"][-1]["seconds"] + seconds, "tuned.pt"
    command += f" && nst export {model} -o {kind}.onnx --precision {EXPORT_PRECISION[kind]}"
    # The record is format 1 (loss settings at the top level, names as in TRAIN_RENAMES_V1: "t"; the
    # architecture's options nested), which TrainConfig.from_dict reads back.
    keys = {key: key for key in ("image_size", "crop_scale", "batch_size", "lr", "style_weight", "style_scale",
                                 "content_weight", "tv_weight", "net", "pooling", "style_loss", "seed")}  # fmt: skip
    if kind == "stylebank":
        keys["t"] = "steps_per_identity"
    if max(config.loss.style_orientations) > 1:
        keys["style_orientations"] = "style_orientations"
    settings = {key: get_setting(config, name) for key, name in keys.items()}
    if config.train_banks is not None:
        settings["train_banks"] = config.train_banks
    summary = {"arch": kind, "arch_options": config.arch_options, **settings, "precision": EXPORT_PRECISION[kind]}
    inline = ", ".join(f"{key} = {inline_toml(value)}" for key, value in summary.items())
    return [
        f"[training.{kind}]",
        f"command = {quoted(command)}",
        f"steps = {steps}",
        f"seconds = {seconds:.0f}",
        f"card = {quoted(card)}",
        f"data = {quoted(training_data(state))}",
        f"config = {{ {inline} }}",
    ]


def training_data(state: dict) -> str:
    """Which photos the model was trained on, e.g. 'shared/data/train: 1500 photos (fingerprint ...)'."""
    folder = Path(state["config"]["data"])
    return f"{folder.parent.name}/{folder.name}: {state['data']['count']} photos (fingerprint {state['data']['fingerprint']})"


def preset_toml(name: str, checkpoints: Path, judged: dict, cards: dict[str, str]) -> str:
    title, artist, lifespan, year = PAINTINGS[name]
    kinds = ["stylebank"] + (["johnson"] if (checkpoints / f"johnson-{name}.ckpt").exists() else [])
    lines = [
        f"name = {quoted(name)}", f"title = {quoted(title)}", f"artist = {quoted(artist)}", f"year = {quoted(year)}",
        f"licence = {quoted(f'public domain by age: {artist} ({lifespan}) died more than 100 years ago')}",
        f"painting = {quoted(BANK_STYLES[name] + '.jpg')}  # in ../shared/data/paintings (PROVENANCE.md there); not redistributed here",
        "", "[models.stylebank]", 'file = "../stylebank.onnx"', f"style = {quoted(name)}",
    ]  # fmt: skip
    if "johnson" in kinds:
        lines += ["", "[models.johnson]", 'file = "johnson.onnx"']
    lines += [
        "",
        "# Trained with tools/bundled_styles.py (time-boxed phases, stopped by Ctrl-C); the equivalent",
        "# commands are below (the learning rate does not depend on the step budget); data: the training photos.",
    ]
    tuned = checkpoints / "bank-tuned.ckpt"  # when present, the bank that ships; config: the tuning run's (the model's own)
    if tuned.exists():
        lines += training_table(tuned, "stylebank", cards["stylebank"], base=checkpoints / "bank.ckpt") + [""]
    else:
        lines += training_table(checkpoints / "bank.ckpt", "stylebank", cards["stylebank"]) + [""]
    if "johnson" in kinds:
        lines += training_table(checkpoints / f"johnson-{name}.ckpt", "johnson", cards["johnson"]) + [""]
    if judged:
        lines += [f"# nst score at 512 px (long side), mean over the held-out photos {', '.join(HELD_OUT)}", "[judged]"]
        lines += [f"{kind} = {{ content = {j['content']:.4g}, style = {j['style']:.4g}, total = {j['total']:.4g} }}"
                  for kind, j in judged.items()]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path)
    parser.add_argument("quality", type=Path, nargs="?")
    parser.add_argument("--card", action="append", default=[], help="KIND=TEXT: where that kind trained")
    args = parser.parse_args()
    cards = dict.fromkeys(EXPORT_PRECISION, "NVIDIA H100 80GB HBM3 (torch 2.11, bf16 autocast)")
    cards.update(text.split("=", 1) for text in args.card)
    judged = json.loads(args.quality.read_text())["styles"] if args.quality else {}
    for name in BANK_STYLES:
        (STYLES / name).mkdir(exist_ok=True)
        (STYLES / name / "preset.toml").write_text(preset_toml(name, args.checkpoints, judged.get(name, {}), cards))
    print(f"wrote {len(BANK_STYLES)} presets under {STYLES}")


if __name__ == "__main__":
    main()
