"""Reliability audit, round two (issue 21): hostile cases through the real CLI; prints a Markdown table.

    PYTHONPATH=. python bench/reliability.py [--jobs 3] [--only numbers] [--keep] [--verbose]

Each case gets its own folder and runs ``python -m nstcli ...`` in a subprocess (one OpenMP thread, no
colour, a timeout). A case is *handled* when it exits as expected (0 only where success is right, else
1 or 2; 130 after SIGTERM), prints no traceback, and on failure says so in one ``nst: error:`` line
(``nst apply``: one ``nst: error: FILE: reason`` line per failed input and the summary line). *Files lost or
corrupted* counts, per case, every file of its folder that changed or vanished without ``--overwrite``,
every new file outside the outputs it may write, every new ``*.part`` file and every output image that
does not decode. Runs as root: permission cases run as ``nobody`` (``runuser``), or are not run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import fnmatch
import hashlib
import itertools
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.bad_inputs import corpus, picture  # noqa: E402 - after the path tweak

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
NUMBERS = ["nan", "inf", "-inf", "0", "-1", "1e30", "99999999999"]
NON_FINITE = {"nan", "inf", "-inf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
SUMMARY = re.compile(r"\d+ written, \d+ skipped, \d+ failed in ")  # nst apply's last line
APPLY = ["apply", "--style", "starry-night"]  # bundled model: no torch, fast
TINY_OPTIMIZE = ["--size", "32", "--iterations", "1", "-q"]
TINY_TRAIN = ["--image-size", "16", "--batch-size", "1", "--steps", "1", "--workers", "0", "--width", "0.25"]
FAIL = frozenset({1, 2})
OK = frozenset({0})
ANY = frozenset({0, 1, 2})  # success or a refusal are both right; the file check decides
NOBODY = pwd.getpwnam("nobody")
NOBODY_HOME = "home-nobody"  # beside the case folders, so caches written there count against no case
CLASSES = ["bad images (previous audit)", "outputs escaping -o", "side outputs", "numbers",
           "file-system refusals", "damaged checkpoints", "quieter wrongs"]  # fmt: skip


@dataclass
class Case:
    """One run of the CLI in its own folder, and what may come of it."""

    kind: str  # the class (a row of the table)
    args: list[str]  # after `nst`
    root: Path  # the case's folder: the cwd, snapshotted before and after
    expect: frozenset[int]
    outputs: tuple[str, ...] = ()  # globs (relative to root) the run may create, or replace with --overwrite
    must_write: tuple[str, ...] = ()  # files a successful run leaves
    as_nobody: bool = False  # permission cases: root reads and writes everything
    timeout: float = 120
    alongside: str | None = None  # a shell command started with the run (a FIFO's writer), killed after it
    during: Callable[[subprocess.Popen], None] | None = None  # e.g. send SIGTERM once work has started
    skipped: str = ""  # why the case is not run here


@dataclass
class Outcome:
    case: Case
    code: int | None  # None: timed out
    last_line: str
    failure: str  # why the case is not handled; "" when it is
    damage: list[str]  # files lost or corrupted
    seconds: float


@dataclass
class Kit:
    """The scratch folder and the files every class starts from."""

    base: Path
    good: Path  # a 32x32 photo
    style: Path  # a 32x32 painting
    data: Path  # two tiny photos for nst train
    nobody: bool  # runuser -u nobody works here
    counter: itertools.count

    def folder(self, label: str, *files: Path, nobody_writes: bool = False) -> Path:
        """A fresh case folder holding copies of ``files``."""
        root = self.base / f"{next(self.counter):03d}-{label}"
        root.mkdir()
        root.chmod(0o755)
        for path in files:
            shutil.copy(path, root / path.name)
        if nobody_writes:
            os.chown(root, NOBODY.pw_uid, NOBODY.pw_gid)
        return root


# ---------------------------------------------------------------- running and judging a case


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 for every file below ``root`` (links by target, FIFOs by kind; never followed)."""
    found: dict[str, str] = {}
    folders = [root]
    while folders:
        for entry in os.scandir(folders.pop()):
            relative = Path(entry.path).relative_to(root).as_posix()
            if entry.is_symlink():
                found[relative] = "link:" + os.readlink(entry.path)
            elif entry.is_dir():
                folders.append(Path(entry.path))
            elif entry.is_file():
                found[relative] = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
            else:
                found[relative] = "special"
    return found


def matches(relative: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - any failure to decode is the finding
        return False


def damage(case: Case, before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Every file lost or corrupted by the run: changed or deleted inputs, stray files, temp files, bad images."""
    overwrite = "--overwrite" in case.args
    found = []
    for relative, digest in before.items():
        if after.get(relative) == digest:
            continue
        if overwrite and matches(relative, case.outputs) and relative in after:
            continue  # replaced as asked (checked below if an image)
        found.append(f"{relative}: {'deleted' if relative not in after else 'changed'}")
    for relative, digest in after.items():
        if before.get(relative) == digest:
            continue
        path = case.root / relative
        if relative.endswith(".part"):
            found.append(f"{relative}: temp file left")
        elif relative not in before and not matches(relative, case.outputs):
            found.append(f"{relative}: written outside the outputs")
        elif path.suffix.lower() in IMAGE_SUFFIXES and digest != "special" and not decodes(path):
            found.append(f"{relative}: does not decode")
    return found


def verdict(case: Case, code: int | None, stderr: str) -> str:
    """Why the outcome is not handled; "" when it is."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code is None:
        return "timed out"
    if "Traceback" in stderr:
        return "traceback"
    if code not in case.expect:
        return f"exit {code}, expected {'/'.join(map(str, sorted(case.expect)))}"
    if code == 0:
        missing = [name for name in case.must_write if not (case.root / name).is_file()]
        return f"exit 0 without {', '.join(missing)}" if missing else ""
    if code == 130:
        return "" if lines and lines[-1] == "nst: interrupted" else "no 'nst: interrupted' line"
    if len(lines) == 1 and lines[0].startswith("nst: error: "):
        return ""
    apply_report = case.args[0] == "apply" and code == 1 and bool(lines) and bool(SUMMARY.match(lines[-1]))
    if apply_report and all(line.startswith("nst: ") for line in lines[:-1]):
        return ""
    return f"{len(lines)} stderr lines, not one 'nst: error:' line"


def command(case: Case) -> list[str]:
    argv = [sys.executable, "-m", "nstcli", *case.args]
    if not case.as_nobody:
        return argv
    return ["runuser", "-u", "nobody", "--", "env", f"HOME={case.root.parent / NOBODY_HOME}", *argv]


def run_case(case: Case) -> Outcome:
    before = snapshot(case.root)
    started = time.monotonic()
    helper = subprocess.Popen(["sh", "-c", case.alongside], cwd=case.root) if case.alongside else None
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command(case), cwd=case.root, env=ENV, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)  # fmt: skip
        if case.during:
            case.during(process)
        try:
            code: int | None = process.wait(timeout=case.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the run's own process group
            process.wait()
            code = None
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if helper and helper.poll() is None:
        helper.kill()
        helper.wait()
    lines = [line for line in stderr.splitlines() if line.strip()]
    return Outcome(case, code, lines[-1] if lines else "", verdict(case, code, stderr),
                   damage(case, before, snapshot(case.root)), time.monotonic() - started)  # fmt: skip


def signal_once(ready: Callable[[], bool], limit: float = 60) -> Callable[[subprocess.Popen], None]:
    """A ``during`` hook: SIGTERM the run as soon as ``ready()`` (work has started), within ``limit`` s."""

    def hook(process: subprocess.Popen) -> None:
        deadline = time.monotonic() + limit
        while process.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    return hook


# ---------------------------------------------------------------- 1. bad images (the previous audit)


def bad_images(kit: Kit) -> list[Case]:
    """Every corpus file through apply, optimize (as content) and score (as style and image)."""
    kind, cases = CLASSES[0], []
    for entry in corpus():
        good = entry.expect == "ok"
        runs = [
            (APPLY + [entry.name, "-o", "out.png"], ("out.png",)),
            (["optimize", entry.name, kit.good.name, "-o", "o.png", *TINY_OPTIMIZE], ("o.png",)),
            (["score", kit.good.name, entry.name, entry.name, "--size", "32"], ()),
        ]
        for args, outputs in runs:
            root = kit.folder("corpus", kit.good)
            (root / entry.name).write_bytes(entry.data)
            cases.append(Case(kind, args, root, OK if good else frozenset({1}), outputs, outputs if good else ()))
    return cases


# ---------------------------------------------------------------- 2. outputs escaping -o


def escape_layout(kit: Kit, label: str) -> Path:
    """photos/{a,b,c}/, elsewhere/ (with deep/), top.png and an empty out/: '..' can reach all of them."""
    root = kit.folder(label)
    for relative in ["photos/a/x.png", "photos/b/y.png", "photos/c/z.png", "elsewhere/z.png",
                     "elsewhere/deep/w.png", "top.png"]:  # fmt: skip
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(kit.good, root / relative)
    (root / "out").mkdir()
    return root


def escaping_outputs(kit: Kit) -> list[Case]:
    """apply with '..' in globs and paths, --name templates, --overwrite onto inputs, links in out/: nothing
    outside out/ may change."""
    kind, cases = CLASSES[1], []
    out = ("out/*",)

    def add(inputs: list[str], extra: list[str], expect: frozenset[int] = ANY, outputs: tuple[str, ...] = out,
            prepare: Callable[[Path], None] | None = None) -> None:  # fmt: skip
        root = escape_layout(kit, "escape")
        if prepare:
            prepare(root)
        cases.append(Case(kind, APPLY + inputs + extra, root, expect, outputs))

    dotdot = "photos/*/../../elsewhere/*.png"  # elsewhere/z.png once per subfolder of photos
    once = "photos/a*/../../elsewhere/*.png"  # elsewhere/z.png once
    add([dotdot], ["-o", "out"])  # three sources, one output: refused as a clash
    add([once], ["-o", "out"])
    add([once], ["-o", "out", "--overwrite"], prepare=lambda root: shutil.copy(kit.style, root / "out/z.png"))
    add(["photos/a/../../elsewhere/z.png"], ["-o", "out"])
    add(["photos/a/**/../../*.png"], ["-o", "out"])
    add(["photos/a*/../../elsewhere/**/*.png"], ["-o", "out", "--overwrite"])
    add([dotdot, "photos/c/z.png"], ["-o", "out"])  # two inputs, one output name
    for template in ["../{stem}.{ext}", "{stem}/../../{stem}.{ext}", "sub/{stem}.{ext}", "..", ".",
                     "{stem}/", "{stem}" * 300 + ".{ext}", "x" * 300 + ".{ext}"]:  # fmt: skip
        add(["photos"], ["-o", "out", "--name", template], FAIL)
    root = escape_layout(kit, "escape")  # an absolute template, into this case's own folder
    cases.append(Case(kind, APPLY + ["photos", "-o", "out", "--name", f"{root}/abs-{{stem}}.{{ext}}"], root, FAIL, out))
    add(["photos"], ["-o", "out", "--name", "{stem}.{ext}/..", "--overwrite"], FAIL)
    # --overwrite where the outputs would be the inputs themselves
    add(["photos"], ["-o", "photos", "--overwrite"], FAIL, ())
    add([once], ["-o", "elsewhere", "--overwrite"], FAIL, ())
    add(["photos/a/x.png"], ["-o", "photos/a", "--overwrite"], FAIL, ())
    # links inside out/ that lead outside it
    add(["photos/a/x.png"], ["-o", "out", "--overwrite"],
        prepare=lambda root: (root / "out/x.png").symlink_to("../elsewhere/z.png"))  # fmt: skip
    add(["photos"], ["-o", "out", "--overwrite"],
        prepare=lambda root: (root / "out/a").symlink_to("../elsewhere", target_is_directory=True))  # fmt: skip
    add(["photos/a/x.png"], ["-o", "out/x.png", "--overwrite"], outputs=("out/x.png",),
        prepare=lambda root: (root / "out/x.png").symlink_to("../elsewhere/z.png"))  # fmt: skip
    return cases


# ---------------------------------------------------------------- 3. side outputs


def side_outputs(kit: Kit) -> list[Case]:
    """optimize's and train's other files (plot, log, config, snapshots, export, previews) against inputs,
    each other, stdout, existing files and missing folders."""
    kind, cases = CLASSES[2], []

    def optimize(extra: list[str], expect: frozenset[int], outputs: tuple[str, ...] = ("o.png",),
                 must: tuple[str, ...] = (), existing: tuple[str, ...] = (),
                 folders: tuple[str, ...] = ()) -> None:  # fmt: skip
        root = kit.folder("side", kit.good, kit.style)
        for name in existing:
            shutil.copy(kit.style, root / name)
        for name in folders:
            (root / name).mkdir()
        args = ["optimize", kit.good.name, kit.style.name, *TINY_OPTIMIZE, *extra]
        cases.append(Case(kind, args, root, expect, outputs, must))

    optimize(["-o", "o.png", "--plot", "good.png", "--overwrite"], FAIL)  # an input
    optimize(["-o", "r.png", "--plot", "r.png"], FAIL, ("r.png",))
    optimize(["-o", "-", "--save-config", "-"], FAIL, ())
    optimize(["-o", "o.png", "--loss-log", "log.csv"], FAIL, existing=("log.csv",))
    optimize(["-o", "o.png", "--save-every", "1", "--iterations", "3"], FAIL, existing=("o.00001.png",))
    optimize(["-o", "o.png", "--save-every", "1", "--iterations", "3", "--overwrite"], FAIL, ("o.png", "o.*.png"),
             folders=("o.00002.png",))  # fmt: skip
    optimize(["-o", "o.png", "--plot", "missing/p.png"], FAIL)
    optimize(["-o", "sheet.png", "--sweep", "style-weight=1,2", "--judge-size", "32"], FAIL, ("sheet*",),
             existing=("sheet.csv",))  # fmt: skip
    every = ("o.png", "o.00001.png", "o.00002.png", "p.png", "log.csv", "c.json")
    optimize(["-o", "o.png", "--plot", "p.png", "--loss-log", "log.csv", "--save-config", "c.json", "--save-every", "1",
              "--iterations", "3", "--overwrite"], OK, every, every, existing=("log.csv", "o.00001.png"))  # fmt: skip

    def train(extra: list[str], expect: frozenset[int], outputs: tuple[str, ...] = ("m.pt", "m.ckpt"),
              must: tuple[str, ...] = (), existing: tuple[str, ...] = (), timeout: float = 120) -> None:  # fmt: skip
        root = kit.folder("train-side", kit.good, kit.style)
        shutil.copytree(kit.data, root / "data")
        for name in existing:
            shutil.copy(kit.style, root / name)
        args = ["train", "--style-image", kit.style.name, "--data", "data", "-o", "m.pt", *TINY_TRAIN, "-q", *extra]
        cases.append(Case(kind, args, root, expect, outputs, must, timeout=timeout))

    train(["--plot", "data/p1.png", "--overwrite"], FAIL)  # a training photo
    train(["--plot", "good.png", "--preview", "good.png", "--overwrite"], FAIL)  # the preview image
    train(["--export", "style.png", "--overwrite"], FAIL)
    train(["--loss-log", "log.csv"], FAIL, existing=("log.csv",))
    train(["--preview", "good.png", "--preview-every", "1", "--overwrite"], FAIL, ("m.pt", "m.ckpt", "m.preview/*"),
          existing=("m.preview",))  # fmt: skip
    train([], ANY, ("m.pt",), existing=("m.ckpt",))  # an old checkpoint beside the model: kept unless replaced
    every = ("m.pt", "p.png", "l.csv", "m.onnx")
    train(["--plot", "p.png", "--loss-log", "l.csv", "--export", "m.onnx", "--preview", "good.png", "--preview-every",
           "1"], OK, (*every, "m.ckpt", "m.preview/*"), every, timeout=240)  # fmt: skip
    return cases


# ---------------------------------------------------------------- 4. numbers


def number_flags(kit: Kit) -> list[tuple[list[str], str, list[str], tuple[str, ...]]]:
    """(base command, flag, values, outputs): a spread of every command's numeric flags. Base commands are
    tiny, so a value that is accepted runs quickly. Every value where the check is cheap (apply, demo,
    bench, score and CLI-only numbers); a few where it comes after torch loads (optimize, train settings)."""
    optimize = ["optimize", kit.good.name, kit.style.name, "-o", "o.png", *TINY_OPTIMIZE]
    train = ["train", "--style-image", kit.style.name, "--data", "data", "-o", "m.pt", *TINY_TRAIN, "-q"]
    apply = APPLY + [kit.good.name, "-o", "out.png"]
    demo = ["demo", "--optimize", "-o", "d.png", "--size", "16", "--iterations", "1", "-q"]
    bench = ["bench", "--size", "32", "--iterations", "1", "--train-size", "32", "--batch-size", "1",
             "--train-steps", "2", "--repeats", "1", "--arch", "texture", "-q"]  # fmt: skip
    score = ["score", kit.good.name, kit.style.name, kit.good.name]
    rows: list[tuple[list[str], str, list[str], tuple[str, ...]]] = []
    rows += [(apply, flag, NUMBERS, ("out.png",)) for flag in ["--quality", "--strength", "--workers"]]
    rows += [(apply, flag, ["nan", "-1", "1e30", "99999999999"], ("out.png",))
             for flag in ["--max-size", "--tile", "--tile-overlap", "--threads", "--batch-size"]]  # fmt: skip
    rows.append((apply, "--mix", [f"starry-night={value},great-wave=1" for value in NUMBERS], ("out.png",)))
    rows += [(demo, flag, NUMBERS, ("d.png",)) for flag in ["--size", "--iterations"]]
    rows += [(bench, flag, NUMBERS, ()) for flag in ["--train-steps", "--repeats"]]
    rows.append((score, "--size", NUMBERS, ()))
    rows += [(optimize, flag, NUMBERS, ("o.png",)) for flag in ["--size", "--quality", "--save-every"]]
    rows += [(optimize, flag, values, ("o.png",)) for flag, values in [
        ("--iterations", ["nan", "0", "1e30"]), ("--style-weight", ["nan", "-inf", "1e30"]), ("--lr", ["nan"]),
        ("--style-scale", ["nan"]), ("--noise-ratio", ["99999999999"]), ("--tv-weight", ["-1"]),
        ("--judge-size", ["nan", "0"]), ("--sweep", ["style-weight=1,nan"])]]  # fmt: skip
    rows += [(train, flag, values, ("m.pt", "m.ckpt")) for flag, values in [
        ("--lr", ["nan"]), ("--image-size", ["1e30"]), ("--batch-size", ["-inf"]), ("--workers", ["1000000"]),
        ("--width", ["nan"])]]  # fmt: skip
    return rows


def numbers(kit: Kit) -> list[Case]:
    """Non-finite values must be refused (exit 2); finite ones refused or run to a decodable result."""
    cases = []
    for base, flag, values, outputs in number_flags(kit):
        for value in values:
            root = kit.folder("number", kit.good, kit.style)
            if base[0] == "train":
                shutil.copytree(kit.data, root / "data")
            refused = frozenset({2}) if NON_FINITE & set(re.split(r"[=,]", value)) else ANY
            timeout = 240 if base[0] in ("bench", "train") else 120
            cases.append(Case(CLASSES[3], [*base, flag, value], root, refused, outputs, timeout=timeout))
    return cases


# ---------------------------------------------------------------- 5. file-system refusals


def file_system(kit: Kit, checkpoint: Path) -> list[Case]:
    """Paths the system refuses: names over 255 bytes (every command, --name), then permissions."""
    kind, cases = CLASSES[4], []
    long_name = "n" * 296
    runs = [
        (APPLY + [kit.good.name, "-o", long_name + ".png"], (long_name + ".png",)),
        (APPLY + [kit.good.name, "-o", long_name + "/x.png"], ()),
        (APPLY + ["in", "-o", long_name], ()),
        (["optimize", kit.good.name, kit.style.name, "-o", "o.png", "--plot", long_name + ".png", *TINY_OPTIMIZE],
         ("o.png",)),
        (["train", "--style-image", kit.style.name, "--data", "in", "-o", long_name + ".pt", *TINY_TRAIN, "-q"], ()),
        (["export", checkpoint.name, "-o", long_name + ".onnx", "-q"], ()),
        (["demo", "-o", long_name + ".png", "--size", "16", "-q"], ()),
        (["score", kit.good.name, kit.style.name, long_name + ".png"], ()),
        (APPLY + ["in", "-o", "out", "--name", "{stem}-{stem}.{ext}"], ("out/*",)),  # 2 x a 200-byte stem
        (APPLY + ["in", "-o", "out", "--name", "é" * 130 + ".{ext}"], ("out/*",)),  # 130 characters, 260 bytes
    ]
    for args, outputs in runs:
        root = kit.folder("fs", kit.good, kit.style, checkpoint)
        (root / "in").mkdir()
        shutil.copy(kit.good, root / "in" / ("p" * 200 + ".png"))
        shutil.copy(kit.good, root / "in" / "q.png")
        cases.append(Case(kind, args, root, FAIL, outputs))
    cases += permission_cases(kit, checkpoint)
    return cases


def permission_cases(kit: Kit, checkpoint: Path) -> list[Case]:
    """As nobody: outputs into a read-only folder (ro/, root's), inputs nobody cannot read (locked.png)."""
    kind, cases = CLASSES[4], []
    runs = [
        APPLY + [kit.good.name, "-o", "ro/out.png"],
        APPLY + ["in", "-o", "ro"],
        APPLY + ["in", "-o", "ro/new"],
        APPLY + ["locked.png", "-o", "out.png"],
        ["optimize", kit.good.name, kit.style.name, "-o", "ro/o.png", *TINY_OPTIMIZE],
        ["optimize", kit.good.name, kit.style.name, "-o", "o.png", "--loss-log", "ro/l.csv", *TINY_OPTIMIZE],
        ["optimize", "locked.png", kit.style.name, "-o", "o.png", *TINY_OPTIMIZE],
        ["train", "--style-image", kit.style.name, "--data", "in", "-o", "ro/m.pt", *TINY_TRAIN, "-q"],
        ["train", "--style-image", kit.style.name, "--data", "in", "-o", "m.pt", "--export", "ro/m.onnx", *TINY_TRAIN],
        ["export", checkpoint.name, "-o", "ro/m.onnx", "-q"],
    ]
    for args in runs:
        root = kit.folder("perm", kit.good, kit.style, checkpoint, nobody_writes=True)
        for name in ("in", "ro"):
            (root / name).mkdir()
            shutil.copy(kit.good, root / name / "a.png")
        shutil.copy(kit.good, root / "locked.png")
        (root / "locked.png").chmod(0)
        skipped = "" if kit.nobody else "not run (root; runuser -u nobody unavailable)"
        outputs = ("out.png", "o.png", "m.pt")
        cases.append(Case(kind, args, root, frozenset({1}), outputs, as_nobody=True, skipped=skipped))
    return cases


# ---------------------------------------------------------------- 6. damaged checkpoints


def damaged_checkpoints(kit: Kit, checkpoint: Path) -> list[Case]:
    """A real checkpoint with one field of the wrong type, through export and train --resume."""
    import torch  # only here: the other classes need no torch in this process

    state: dict[str, Any] = torch.load(checkpoint, weights_only=True)
    config = state["config"]
    in_config = {
        "arch_options-a-string": {"arch_options": "wide"},
        "width-a-string": {"arch_options": {**config["arch_options"], "width": "big"}},
        "style_weight-a-string": {"loss": {**config["loss"], "style_weight": "x"}},
        "style-a-number": {"style": 5},
    }
    variants = {name: {**state, "config": {**config, **change}} for name, change in in_config.items()}
    variants |= {"config-a-string": {**state, "config": "x"}, "model-a-string": {**state, "model": "x"}}
    in_state = {"step-a-string": {"step": "x"}, "optimizer-a-list": {"optimizer": []}, "rng-a-string": {"rng": "x"},
                "data-count-a-string": {"data": {**state["data"], "count": "x"}}}  # fmt: skip
    variants |= {name: {**state, **change} for name, change in in_state.items()}
    cases = []
    for name, value in variants.items():
        for args, outputs in [(["export", f"{name}.pt", "-o", "m.onnx", "-q"], ("m.onnx",)),
                              (["train", "--resume", f"{name}.pt", "-o", "more.pt", "--steps", "2", "--workers", "0",
                                "-q"], ("more.pt", "more.ckpt"))]:  # fmt: skip
            if args[0] == "export" and name in in_state:
                continue  # export reads the weights and config only
            root = kit.folder("ckpt")
            torch.save(value, root / f"{name}.pt")
            cases.append(Case(CLASSES[5], args, root, frozenset({1}), outputs))
    return cases


# ---------------------------------------------------------------- 7. quieter wrongs


def quieter_wrongs(kit: Kit) -> list[Case]:
    """An unlistable subfolder, a backslash in a name, a FIFO input, a user's look-alike temp file, SIGTERM."""
    kind, cases = CLASSES[6], []
    # a folder run with a subfolder nobody cannot list: counted as a failed input, the rest written
    root = kit.folder("unreadable-sub", nobody_writes=True)
    for relative in ["in/a.png", "in/b.png", "in/locked/c.png"]:
        (root / relative).parent.mkdir(exist_ok=True)
        shutil.copy(kit.good, root / relative)
    (root / "in/locked").chmod(0)
    cases.append(Case(kind, APPLY + ["in", "-o", "out"], root, frozenset({1}), ("out/*",), ("out/a.png", "out/b.png"),
                      as_nobody=True, skipped="" if kit.nobody else "not run (root)"))  # fmt: skip
    # a backslash is a character of a file name
    for inputs in (["in"], ["in/*.png"]):
        root = kit.folder("backslash")
        (root / "in").mkdir()
        shutil.copy(kit.good, root / "in" / "back\\slash.png")
        shutil.copy(kit.good, root / "in" / "plain.png")
        cases.append(Case(kind, APPLY + inputs + ["-o", "out"], root, OK, ("out/*",),
                          ("out/back\\slash.png", "out/plain.png")))  # fmt: skip
    # a FIFO as the single input, with -o FILE: a file comes out
    root = kit.folder("fifo", kit.good)
    os.mkfifo(root / "fifo.png")
    cases.append(Case(kind, APPLY + ["fifo.png", "-o", "out.png"], root, OK, ("out.png",), ("out.png",), timeout=60,
                      alongside=f"cat {kit.good.name} > fifo.png"))  # fmt: skip
    # a user's hidden look-alike of a temp file survives runs that write, replace or refuse beside it
    for extra, expect, existing in [([], OK, False), (["--overwrite"], OK, True), ([], FAIL, True)]:
        root = kit.folder("user-part")
        (root / "in").mkdir()
        (root / "out").mkdir()
        shutil.copy(kit.good, root / "in" / "img.png")
        (root / "out" / ".img.png.mine.part").write_bytes(b"the user's own notes")
        if existing:
            shutil.copy(kit.style, root / "out" / "img.png")
        cases.append(Case(kind, APPLY + ["in", "-o", "out", *extra], root, expect, ("out/img.png",)))
    root = kit.folder("user-part", kit.good, kit.style)
    (root / ".o.png.mine.part").write_bytes(b"the user's own notes")
    cases.append(Case(kind, ["optimize", kit.good.name, kit.style.name, "-o", "o.png", *TINY_OPTIMIZE], root, OK,
                      ("o.png",), ("o.png",)))  # fmt: skip
    cases += interrupted(kit)
    return cases


def interrupted(kit: Kit) -> list[Case]:
    """SIGTERM once work has started: exit 130, 'nst: interrupted', no temp file, written outputs whole."""
    kind = CLASSES[6]
    root = kit.folder("sigterm-apply")
    (root / "in").mkdir()
    for index in range(150):
        picture(128, 128, seed=index).save(root / "in" / f"p{index:03d}.png")
    out = root / "out"
    apply_started = signal_once(lambda: out.is_dir() and len(os.listdir(out)) >= 2)
    cases = [Case(kind, APPLY + ["in", "-o", "out"], root, frozenset({130}), ("out/*",), timeout=90,
                  during=apply_started)]
    root = kit.folder("sigterm-optimize", kit.good, kit.style)
    snapshots = root
    optimize_started = signal_once(lambda: any(name.startswith("o.0") for name in os.listdir(snapshots)))
    args = ["optimize", kit.good.name, kit.style.name, "-o", "o.png", "--size", "32", "--iterations", "100000",
            "--save-every", "5"]  # fmt: skip
    cases.append(Case(kind, args, root, frozenset({130}), ("o.png", "o.*.png"), timeout=90, during=optimize_started))
    return cases


# ---------------------------------------------------------------- the run


def make_kit(base: Path) -> Kit:
    for name in ("good.png", "style.png"):
        picture(32, 32, seed=3 if name == "good.png" else 7).save(base / name)
    (base / "data").mkdir()
    picture(40, 40, seed=4).save(base / "data" / "p1.png")
    picture(40, 40, seed=5).save(base / "data" / "p2.jpg")
    (base / NOBODY_HOME).mkdir()
    os.chown(base / NOBODY_HOME, NOBODY.pw_uid, NOBODY.pw_gid)
    base.chmod(0o755)
    probe = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", "1"], capture_output=True)
    return Kit(base, base / "good.png", base / "style.png", base / "data", probe.returncode == 0,
               itertools.count())  # fmt: skip


def start_checkpoint(kit: Kit) -> tuple[subprocess.Popen, Path]:
    """A 1-step training run whose checkpoint (full training state) classes 5 and 6 build on."""
    path = kit.base / "base.pt"
    args = ["train", "--style-image", str(kit.style), "--data", str(kit.data), "-o", str(path), *TINY_TRAIN, "-q"]
    process = subprocess.Popen([sys.executable, "-m", "nstcli", *args], env=ENV, stdout=subprocess.DEVNULL)
    return process, path


def table(outcomes: list[Outcome], skipped: list[Case]) -> str:
    lines = ["| class | cases | handled | files lost or corrupted |", "|---|---|---|---|"]
    for kind in CLASSES:
        mine = [outcome for outcome in outcomes if outcome.case.kind == kind]
        handled = sum(not outcome.failure for outcome in mine)
        lost = sum(len(outcome.damage) for outcome in mine)
        not_run = sum(case.kind == kind for case in skipped)
        note = f" ({not_run} not run: root)" if not_run else ""
        lines.append(f"| {kind} | {len(mine)}{note} | {handled} | {lost} |")
    handled, lost = sum(not o.failure for o in outcomes), sum(len(o.damage) for o in outcomes)
    lines.append(f"| **all** | {len(outcomes)} | {handled} | {lost} |")
    return "\n".join(lines)


def report(outcomes: list[Outcome], skipped: list[Case], seconds: float, jobs: int, verbose: bool) -> None:
    print(table(outcomes, skipped))
    machine = f"{platform.node()}, {os.cpu_count()} CPUs, {jobs} runs at a time"
    print(f"\n{datetime.date.today()} ({machine}): {seconds:.0f} s")
    bad = [outcome for outcome in outcomes if outcome.failure or outcome.damage]
    for outcome in sorted(bad, key=lambda o: CLASSES.index(o.case.kind)):
        case = outcome.case
        who = "runuser -u nobody -- " if case.as_nobody else ""
        print(f"\n- [{case.kind}] cd {case.root.name} && {who}nst {shlex.join(case.args)}")
        if outcome.failure:
            print(f"  not handled: {outcome.failure}; stderr ends: {outcome.last_line[:300]}")
        for line in outcome.damage:
            print(f"  file: {line}")
    for case in skipped:
        print(f"\n- [{case.kind}] {case.skipped}: nst {shlex.join(case.args)}")
    if verbose:
        print("\nevery case: seconds, exit, stderr's last line, command")
        for outcome in outcomes:
            print(f"{outcome.seconds:6.1f} {outcome.code!s:>4}  {outcome.last_line[:110]:110}  "
                  f"nst {shlex.join(outcome.case.args)[:200]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="cases run at a time (default 3)")
    parser.add_argument("--only", help="run the classes whose name contains this text")
    parser.add_argument("--keep", action="store_true", help="keep the case folders (printed)")
    parser.add_argument("--verbose", action="store_true", help="also list every case's exit code and last line")
    args = parser.parse_args()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="nst-reliability-"))
    kit = make_kit(base)
    wanted = {kind for kind in CLASSES if args.only is None or args.only in kind}
    trainer, checkpoint = start_checkpoint(kit) if wanted & {CLASSES[4], CLASSES[5]} else (None, kit.base)

    def with_checkpoint(build: Callable[[Kit, Path], list[Case]]) -> Callable[[], list[Case]]:
        def built() -> list[Case]:
            if trainer is None or trainer.wait() != 0:
                raise SystemExit("the base training run failed: nst train does not work here")
            return build(kit, checkpoint)

        return built

    builders: dict[str, Callable[[], list[Case]]] = {
        CLASSES[0]: lambda: bad_images(kit), CLASSES[1]: lambda: escaping_outputs(kit),
        CLASSES[2]: lambda: side_outputs(kit), CLASSES[3]: lambda: numbers(kit),
        CLASSES[4]: with_checkpoint(file_system), CLASSES[5]: with_checkpoint(damaged_checkpoints),
        CLASSES[6]: lambda: quieter_wrongs(kit),
    }  # fmt: skip
    futures, skipped = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for kind in (kind for kind in CLASSES if kind in wanted):
            for case in builders[kind]():
                if case.skipped:
                    skipped.append(case)
                else:
                    futures.append(pool.submit(run_case, case))
        outcomes = [future.result() for future in futures]
    report(outcomes, skipped, time.monotonic() - started, args.jobs, args.verbose)
    if args.keep:
        print(f"\ncase folders: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
