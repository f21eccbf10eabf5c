"""Fingerprint what the bundled models paint: every bundled style (both kinds) and one mix over a
folder of photos, through the real ``nst apply`` CLI. Used to show a refactor changed no pixel.

    python tools/bundled_outputs.py ../shared/data/photos -o before.json
    python tools/bundled_outputs.py ../shared/data/photos --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def runs() -> list[tuple[str, list[str]]]:
    """(label, nst apply flags) for every bundled style and kind, and one two-style mix."""
    from nstcli import styles

    found = []
    for preset in styles.list_presets():
        for kind in preset.models:
            found.append((f"{preset.name}/{kind}", ["--style", preset.name, "--kind", kind]))
    found.append(("mix", ["--mix", "starry-night=0.5,the-kiss=0.5"]))
    return found


def fingerprint(photos: Path) -> dict[str, str]:
    """sha256 of every output file, keyed by run label and file name."""
    digests = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, flags in runs():
            out = Path(scratch) / label.replace("/", "_")
            command = [sys.executable, "-m", "nstcli", "apply", *flags, str(photos), "-o", str(out), "--format", "png", "-q"]
            subprocess.run(command, check=True)
            for path in sorted(out.rglob("*.png")):
                digests[f"{label}/{path.relative_to(out)}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="write the fingerprints as JSON")
    parser.add_argument("--compare", type=Path, help="compare with fingerprints written earlier")
    args = parser.parse_args()
    digests = fingerprint(args.photos)
    if args.output:
        args.output.write_text(json.dumps(digests, indent=1))
    print(f"{len(digests)} outputs fingerprinted")
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = sorted(key for key in before.keys() | digests.keys() if before.get(key) != digests.get(key))
        print(f"{len(before)} before, {len(digests)} now, {len(changed)} differ")
        for key in changed[:20]:
            print(f"  differs: {key}")
        sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
