"""nst train: data folder, sampler, schedule, training, checkpoints, exact resume, Ctrl-C, DDP, CLI errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nstcli import checkpoint, data, generators, settings, train, train_plan
from nstcli.errors import InputError, UsageError
from tests.conftest import SUBPROCESS_ENV as ENV, hear_ctrl_c, nst



pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_photo(path: Path, height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, height // 8), max(2, width // 8), 3)) * 255).astype(np.uint8)
    Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR).save(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """6 readable photos (one in a subfolder, one webp), a corrupt file and a non-image file."""
    folder = tmp_path_factory.mktemp("photos")
    for index in range(5):
        write_photo(folder / f"photo{index}.png", 40 + 4 * index, 48, index)
    (folder / "more").mkdir()
    write_photo(folder / "more" / "photo5.webp", 36, 60, 5)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("style") / "waves.png"
    write_photo(path, 48, 48, 99)
    return path


@pytest.fixture(scope="module")
def random_vgg16(tmp_path_factory) -> Path:
    """Random-initialised VGG16 conv weights in torchvision's key layout: a fast stand-in descriptor."""
    from torchvision.models import vgg

    torch.manual_seed(0)
    features = vgg.make_layers(vgg.cfgs["D"])
    path = tmp_path_factory.mktemp("weights") / "vgg16_random.pth"
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, path)
    return path


def tiny_config(photos: Path, style: Path, weights: Path, **changes) -> train.TrainConfig:
    values = dict(
        style=[str(style)], data=str(photos), arch="johnson", arch_options={"width": 0.25, "residual_blocks": 1},
        image_size=32, batch_size=2, steps=6, workers=0, net="vgg16", weights=str(weights),
        content_layers=["relu1_2"], style_layers=["relu1_2", "relu2_2"], style_weight=10.0, lr=1e-2,
        precision="fp32", log_every=1, checkpoint_every=0,
    )  # fmt: skip
    values.update(changes)
    return settings.with_settings(train.TrainConfig(), values)


# --- data -------------------------------------------------------------------------------------


def test_scan_is_recursive_and_counts_unreadable_files(photos):
    scan = data.scan_folder(photos)
    assert len(scan.files) == 6 and scan.unreadable == 1
    assert any(path.suffix == ".webp" for path in scan.files)
    assert len(data.scan_folder(photos, max_images=2).files) == 2


def test_scan_rejects_empty_and_all_corrupt_folders(tmp_path):
    with pytest.raises(InputError, match="no images"):
        data.scan_folder(tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(InputError, match="none of the 2 image files could be read"):
        data.scan_folder(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        data.scan_folder(tmp_path / "missing")


def test_a_file_that_fails_to_decode_is_replaced_and_counted(tmp_path):
    write_photo(tmp_path / "a.png", 40, 40, 0)
    write_photo(tmp_path / "b.png", 40, 40, 1)
    whole = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(whole[: len(whole) // 2])  # header fine, pixels truncated
    dataset = data.ContentImages(data.scan_folder(tmp_path).files, 32, seed=0)
    image, skipped = dataset[(0, 0)]
    assert image.shape == (3, 32, 32) and skipped == 1
    assert data.collate([dataset[(0, 0)], dataset[(0, 1)]])[1] == 1


def test_crops_are_a_function_of_seed_epoch_and_index(photos):
    dataset = data.ContentImages(data.scan_folder(photos).files, 32, seed=3)
    assert torch.equal(dataset[(1, 2)][0], dataset[(1, 2)][0])
    assert not torch.equal(dataset[(1, 2)][0], dataset[(2, 2)][0])


def horizontal_ramp(width: int, height: int) -> Image.Image:
    """Red = x (0..255 across the image), so a crop's red range tells how much of the width it covers."""
    ramp = np.linspace(0, 255, width).round().astype(np.uint8)
    return Image.fromarray(np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1))


def test_crop_scale_draws_crops_of_several_sizes():
    photo = horizontal_ramp(512, 256)

    def covered(crop_scale: float, seed: int) -> float:
        crop = np.asarray(data.random_crop(photo, 64, torch.Generator().manual_seed(seed), crop_scale), dtype=float)
        return (crop[..., 0].max() - crop[..., 0].min()) / 255 * 2  # fraction of the short side (half the width)

    whole = [covered(1.0, seed) for seed in range(20)]
    scaled = [covered(0.25, seed) for seed in range(20)]
    assert all(0.9 < value <= 1.0 for value in whole)
    assert min(scaled) < 0.5 and max(scaled) > 0.75 and all(0.2 < value <= 1.0 for value in scaled)


def test_decoded_photos_are_kept_up_to_the_cache_budget(photos, monkeypatch):
    files = data.scan_folder(photos).files
    dataset = data.ContentImages(files, 32, seed=0)
    assert dataset.read(files[0]) is dataset.read(files[0])  # decoded once
    monkeypatch.setattr(data, "CACHE_PIXELS", 0)
    small = data.ContentImages(files, 32, seed=0)
    assert small.read(files[0]) is not small.read(files[0]) and not small.decoded
    assert torch.equal(small[(0, 1)][0], dataset[(0, 1)][0])  # the same crops either way


def test_stream_sampler_shards_epochs_and_resumes_at_a_position():
    def take(sampler, count):
        stream = iter(sampler)
        return [next(stream) for _ in range(count)]

    full = take(data.StreamSampler(5, seed=1), 12)
    assert sorted(index for _, index in full[:5]) == list(range(5))  # an epoch is a permutation
    assert [epoch for epoch, _ in full] == [0] * 5 + [1] * 5 + [2] * 2
    assert take(data.StreamSampler(5, seed=1, start=7), 5) == full[7:12]
    ranks = [take(data.StreamSampler(5, seed=1, rank=rank, world=2), 3) for rank in (0, 1)]
    assert sorted(index for keys in ranks for _, index in keys) == sorted([*range(5), ranks[0][0][1]])


# --- schedule, config --------------------------------------------------------------------------


def test_learning_rate_schedule_has_a_warmup_and_step_decay():
    config = train.TrainConfig(lr=1e-3, warmup_steps=10, lr_decay=0.5, lr_decay_every=100)
    assert train.learning_rate(config, 0) == pytest.approx(1e-2)
    assert train.learning_rate(config, 10) == pytest.approx(1e-3)
    assert train.learning_rate(config, 109) == pytest.approx(1e-3)
    assert train.learning_rate(config, 110) == pytest.approx(5e-4)
    assert train.learning_rate(config, 310) == pytest.approx(1.25e-4)


def test_default_layers_follow_the_paper():
    weights = train.loss_weights(settings.with_settings(train.TrainConfig(), {"net": "vgg16"}))
    assert weights.content_layers == ["relu2_2"]
    assert weights.style_layers == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert train.loss_weights(train.TrainConfig()).style_layers == ["relu1_2", "relu2_2", "relu3_4", "relu4_4"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_size": 30}, "multiple of 4"),
        ({"arch": "texture", "arch_options": {}, "image_size": 40}, "multiple of 16"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr_decay": 1.5}, "--lr-decay"),
        ({"crop_scale": 0.0}, "--crop-scale"),
        ({"crop_scale": 1.5}, "--crop-scale"),
        ({"weight_init": "zeros"}, "--weight-init"),
        ({"style_weight": -1.0}, "--style-weight"),
        ({"style_layers": ["relu9_9"]}, "relu9_9"),
        ({"style_blend": [0.5, 0.5]}, "--style-blend"),
        ({"arch_options": {"scales": 3}}, "--texture-scales does not apply"),
    ],
)
def test_bad_settings_are_usage_errors(photos, style, random_vgg16, changes, message):
    with pytest.raises(UsageError, match=message):
        train_plan.validate(tiny_config(photos, style, random_vgg16, **changes))


def test_resume_config_keeps_the_training_and_takes_run_flags(photos, style, random_vgg16):
    saved = tiny_config(photos, style, random_vgg16)
    resumed = train_plan.resume_config(saved, {"steps": 50, "data": str(photos / "." ), "lr": saved.lr})
    assert resumed.steps == 50 and resumed.lr == saved.lr
    with pytest.raises(UsageError, match="--lr cannot change on --resume"):
        train_plan.resume_config(saved, {"lr": 0.5})
    with pytest.raises(UsageError, match="--width cannot change"):
        train_plan.resume_config(saved, {"arch_options": {"width": 1.0}})
    train_plan.resume_config(saved, {"arch_options": {"upsample": "nearest"}})  # the default, given again: not a change
    assert train_plan.resume_config(saved, {"epochs": 3.0}).steps is None  # --epochs alone sets the length
    assert train_plan.resume_config(saved, {"epochs": 3.0, "steps": 7}).steps == 7  # --steps still wins


# --- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "options"), [("johnson", {"width": 0.25, "residual_blocks": 1}), ("texture", {"scales": 2})])
def test_training_lowers_the_loss_and_writes_a_safe_checkpoint(tmp_path, photos, style, random_vgg16, arch, options):
    config = tiny_config(photos, style, random_vgg16, arch=arch, arch_options=options, steps=16, log_every=4)
    result = train.run_train(train_plan.TrainPlan(config, tmp_path / "model.pt"))
    totals = [row["total"] for row in result.history]
    assert len(totals) == 4 and totals[-1] < totals[0]
    assert (result.unreadable_files, result.failed_reads) == (1, 0)  # broken.jpg, left out at the scan
    state = torch.load(tmp_path / "model.pt", weights_only=True)  # no pickled code
    assert state["step"] == 16 and state["config"]["arch"] == arch
    # --resume checks for exactly what the trainer writes beside format, versions, config and weights
    assert set(state) == {"format", "version", "nst_version", "config", "model", *checkpoint.TRAINING_STATE_KEYS}
    model, config_back, multiple = checkpoint.build_trained_generator(checkpoint.load_checkpoint(tmp_path / "model.pt"))
    assert config_back == config
    with torch.no_grad():
        assert model(torch.rand(1, 3, 2 * multiple, 2 * multiple)).shape == (1, 3, 2 * multiple, 2 * multiple)


def test_warmup_trains_without_the_style_term(tmp_path, photos, style, random_vgg16):
    config = tiny_config(photos, style, random_vgg16, steps=2, warmup_steps=1)
    history = train.run_train(train_plan.TrainPlan(config, tmp_path / "m.pt")).history
    assert history[0]["total"] == pytest.approx(history[0]["content"] + history[0]["tv"])
    assert history[0]["lr"] == pytest.approx(10 * config.lr)
    assert history[1]["total"] == pytest.approx(history[1]["content"] + history[1]["style"] + history[1]["tv"])


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, photos, style, random_vgg16):
    # texture: its noise draws from the RNG, so RNG state must be restored too
    config = tiny_config(photos, style, random_vgg16, arch="texture", arch_options={"scales": 2}, steps=8,
                         checkpoint_every=4, batch_size=4, tv_weight=1.0)  # fmt: skip

    def keep_checkpoint(progress: train.Progress) -> None:  # a finished run removes its checkpoint
        if progress.event == f"checkpoint {tmp_path / 'whole.ckpt'}":
            shutil.copy(tmp_path / "whole.ckpt", tmp_path / "halfway.ckpt")

    whole = train.run_train(train_plan.TrainPlan(config, tmp_path / "whole.pt"), keep_checkpoint)
    assert not (tmp_path / "whole.ckpt").exists()
    halfway = checkpoint.load_checkpoint(tmp_path / "halfway.ckpt")
    assert halfway["step"] == 4 and halfway["items_seen"] == 16  # an epoch (6 images) and a half in
    resumed = train.run_train(train_plan.TrainPlan(config, tmp_path / "resumed.pt", resume_state=halfway))
    assert len(resumed.history) == len(whole.history) == 8
    for a, b in zip(whole.history, resumed.history):
        for key in ("content", "style", "tv", "total"):
            assert b[key] == pytest.approx(a[key], rel=1e-5)
    final_whole = torch.load(tmp_path / "whole.pt", weights_only=True)["model"]
    final_resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)["model"]
    for key, value in final_whole.items():
        torch.testing.assert_close(final_resumed[key], value, rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_length_already_trained_and_the_last_step_is_previewed(tmp_path, photos, style, random_vgg16):
    config = tiny_config(photos, style, random_vgg16, steps=2, preview=str(style), preview_every=100)
    train.run_train(train_plan.TrainPlan(config, tmp_path / "m.pt"))
    assert [path.name for path in (tmp_path / "m.preview").iterdir()] == ["step_0000002.png"]  # the last step's
    state = checkpoint.load_checkpoint(tmp_path / "m.pt", resumable=True)
    for steps in (2, 1):
        with pytest.raises(UsageError, match="^the checkpoint has trained 2 steps; give --steps"):
            train.run_train(train_plan.TrainPlan(replace(config, steps=steps), tmp_path / "again.pt", resume_state=state))
    assert not (tmp_path / "again.pt").exists()


def test_resume_refuses_changed_data(tmp_path, photos, style, random_vgg16):
    config = tiny_config(photos, style, random_vgg16, steps=1)
    train.run_train(train_plan.TrainPlan(config, tmp_path / "m.pt"))
    state = checkpoint.load_checkpoint(tmp_path / "m.pt")
    state["data"]["fingerprint"] = "0" * 16
    with pytest.raises(InputError, match="data folder changed"):
        train.run_train(train_plan.TrainPlan(config, tmp_path / "m2.pt", resume_state=state))


def test_resume_finds_the_same_photos_in_a_moved_folder(tmp_path, photos, style, random_vgg16):
    config = tiny_config(photos, style, random_vgg16, steps=1)
    train.run_train(train_plan.TrainPlan(config, tmp_path / "m.pt"))
    state = checkpoint.load_checkpoint(tmp_path / "m.pt")
    moved = shutil.copytree(photos, tmp_path / "elsewhere")
    resumed = train_plan.resume_config(train.TrainConfig.from_dict(state["config"]), {"data": str(moved), "steps": 2})
    assert train.run_train(train_plan.TrainPlan(resumed, tmp_path / "m2.pt", resume_state=state)).steps == 2
    (moved / "photo0.png").unlink()  # no longer the same photos
    with pytest.raises(InputError, match="data folder changed"):
        train.run_train(train_plan.TrainPlan(resumed, tmp_path / "m3.pt", resume_state=state))


def test_load_checkpoint_rejects_other_files(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="not an nst model"):
        checkpoint.load_checkpoint(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(InputError, match="not an nst model"):
        checkpoint.load_checkpoint(tmp_path / "y.pt")


def test_a_format_1_checkpoint_still_loads(tmp_path):
    """nst 0.1 wrote the loss settings at the top of the config and named two fields differently."""
    arch_options = {"width": 0.25, "residual_blocks": 1}
    model = generators.build_generator("johnson", generators.make_options("johnson", arch_options))
    config = {"style": ["s.png"], "arch": "johnson", "arch_options": arch_options, "style_weight": 0.7, "init": "he"}
    torch.save({"format": "nst-train", "version": 1, "config": config, "model": model.state_dict()}, tmp_path / "old.pt")
    state = checkpoint.load_checkpoint(tmp_path / "old.pt")
    assert state["config"]["loss"]["style_weight"] == 0.7 and state["config"]["weight_init"] == "he"
    rebuilt, _, _ = checkpoint.build_trained_generator(state)
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in rebuilt.state_dict().items())


# --- the command line (in-process; real processes for Ctrl-C, kill, torchrun) -----------------


def tiny_flags(photos: Path, style: Path, weights: Path) -> list[str]:
    return [
        "--style-image", str(style), "--data", str(photos), "--width", "0.25", "--residual-blocks", "1",
        "--image-size", "32", "--batch-size", "2", "--workers", "0", "--net", "vgg16", "--weights", str(weights),
        "--content-layers", "relu1_2", "--style-layers", "relu1_2,relu2_2",
    ]  # fmt: skip


def test_cli_trains_with_the_embedded_vgg19_and_writes_everything(tmp_path, photos, style):
    result = nst(
        "train", "--style-image", str(style), "--data", str(photos), "-o", "model.pt", "--width", "0.25",
        "--image-size", "32", "--batch-size", "2", "--steps", "4", "--workers", "1", "--warmup-steps", "1",
        "--log-every", "2", "--loss-log", "loss.csv", "--plot", "loss.png", "--preview", str(style),
        "--preview-every", "2", "--export", "model.onnx", "--crop-scale", "0.5", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""  # stdout is for data only
    assert "1 unreadable image files were left out" in result.stderr
    assert "wrote model.pt" in result.stderr and "wrote model.onnx" in result.stderr
    rows = (tmp_path / "loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,lr,content,style,tv,total") and len(rows) == 3
    assert sorted(path.name for path in (tmp_path / "model.preview").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert Image.open(tmp_path / "loss.png").size == (900, 540)
    config = torch.load(tmp_path / "model.pt", weights_only=True)["config"]
    assert config["loss"]["net"] == "vgg19" and config["crop_scale"] == 0.5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--arch", "texture"], 2, "--width does not apply to --arch texture"),
        (["--data", "{empty}"], 1, "no images"),
        (["--style-image", "{missing}"], 1, "no such file"),
        (["--crop-scale", "0"], 2, "--crop-scale must be in 0.01..1, got 0"),
        (["--arch", "bogus"], 2, "unknown --arch 'bogus' (choose from johnson, texture, stylebank, cin, universal)"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, photos, style, random_vgg16, args, code, message):
    (tmp_path / "empty").mkdir()
    places = {"{empty}": str(tmp_path / "empty"), "{missing}": "gone.png"}
    args = [places.get(arg, arg) for arg in args]
    result = nst("train", "-o", "model.pt", "--steps", "1", *tiny_flags(photos, style, random_vgg16), *args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_cli_refuses_to_overwrite_and_needs_style_and_data(tmp_path, photos, style, random_vgg16):
    (tmp_path / "model.pt").write_bytes(b"x")
    result = nst("train", "-o", "model.pt", *tiny_flags(photos, style, random_vgg16), cwd=tmp_path)
    assert result.returncode == 2 and "already exists" in result.stderr
    result = nst("train", "-o", "other.pt", "--data", str(photos), cwd=tmp_path)
    assert result.returncode == 2 and "--style-image and --data are required" in result.stderr


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_finishes(tmp_path, photos, style, random_vgg16):
    flags = tiny_flags(photos, style, random_vgg16)
    process = subprocess.Popen(
        [sys.executable, "-m", "nstcli", "train", "-o", "model.pt", *flags, "--steps", "100000", "--log-every", "1",
         "--loss-log", "loss.csv"],
        cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True, preexec_fn=hear_ctrl_c,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    for line in process.stderr:  # wait until training is under way
        if line.startswith("step ") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert "continue with --resume model.ckpt --overwrite" in rest  # the loss log is there, and is rewritten whole
    assert (tmp_path / "loss.csv").is_file()
    state = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert 0 < state["step"] < 100000 and not (tmp_path / "model.pt").exists()
    target = str(state["step"] + 2)
    result = nst("train", "-o", "model.pt", "--resume", "model.ckpt", "--steps", target, "--loss-log", "loss.csv", "--overwrite",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == int(target)
    assert (tmp_path / "loss.csv").read_text().splitlines()[-1].startswith(f"{target},")
    assert not (tmp_path / "model.ckpt").exists()  # finished: model.pt holds the last step, no older one is left to resume
    result = nst("train", "-o", "again.pt", "--resume", "model.pt", "--lr", "0.5", cwd=tmp_path)
    assert result.returncode == 2 and "--lr cannot change on --resume" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_whole_process_group_reaches_the_data_workers_too(tmp_path, photos, style, random_vgg16, signum):
    """Ctrl-C at a terminal (or kill -TERM -PGID) signals the DataLoader workers as well as the trainer:
    the run must still stop cleanly with its checkpoint, not die of a lost worker with a traceback."""
    flags = [*tiny_flags(photos, style, random_vgg16), "--workers", "2", "--steps", "100000", "--log-every", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "nstcli", "train", "-o", "model.pt", *flags], cwd=tmp_path, env=ENV,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=hear_ctrl_c,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    for line in process.stderr:  # wait until training is under way
        if line.startswith("step 3") or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signum)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert "Traceback" not in rest and "continue with --resume model.ckpt" in rest
    assert torch.load(tmp_path / "model.ckpt", weights_only=True)["step"] >= 3


def test_a_killed_run_leaves_its_last_checkpoint_whole_and_resume_finishes(tmp_path, photos, style, random_vgg16):
    """SIGKILL (no handler runs) while checkpoints are written every step: the file on disk is never partial."""
    flags = [*tiny_flags(photos, style, random_vgg16), "--steps", "100000", "--log-every", "1", "--checkpoint-every", "1"]
    process = subprocess.Popen([sys.executable, "-m", "nstcli", "train", "-o", "model.pt", *flags],
                               cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    for line in process.stderr:  # wait for a few checkpointed steps
        if line.startswith("step 3") or time.monotonic() > deadline:
            break
    process.kill()
    assert process.wait(timeout=60) == -signal.SIGKILL
    state = torch.load(tmp_path / "model.ckpt", weights_only=True)  # loads: whole, not half-written
    assert state["step"] >= 2 and not (tmp_path / "model.pt").exists()
    target = str(state["step"] + 2)
    result = nst("train", "-o", "model.pt", "--resume", "model.ckpt", "--steps", target, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == int(target)


def test_torchrun_trains_with_two_processes(tmp_path, photos, style, random_vgg16):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "nstcli", "train", "-o", "model.pt", *tiny_flags(photos, style, random_vgg16),
        "--steps", "3", "--device", "cpu", "--log-every", "1", "--checkpoint-every", "2",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["world"] == 2 and len(state["rng"]) == 2 and state["step"] == 3
    assert state["items_seen"] == 6  # per rank: 3 steps of batch 2
    assert result.stderr.count("wrote model.pt") == 1  # only rank 0 talks


def test_old_flag_names_still_work_with_one_warning_each(tmp_path, photos, style, random_vgg16):
    flags = tiny_flags(photos, style, random_vgg16)
    flags[flags.index("--style-image")] = "--style"
    result = nst("train", "-o", "model.pt", "--steps", "1", "--log", "loss.csv", "-q", *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        "nst: warning: train --log is deprecated; use --loss-log",
        "nst: warning: train --style is deprecated; use --style-image",
    ]
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "loss.csv").is_file()


def test_help_shows_each_commands_own_defaults():
    train_help, optimize_help = (nst(command, "--help").stdout.decode() for command in ("train", "optimize"))
    train_line = next(line for line in train_help.splitlines() if "--style-weight" in line)
    optimize_line = next(line for line in optimize_help.splitlines() if "--style-weight" in line)
    assert "pastiche" not in train_help
    for help_text, default in ((train_help, "0.05"), (optimize_help, "10.0")):
        after = help_text[help_text.index("--style-weight"):]
        assert f"[default: {default}]" in after[: after.index("--", 3)], (train_line, optimize_line)
