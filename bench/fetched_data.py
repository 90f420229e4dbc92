"""Real paired data that ``../shared/data`` lacks, extracted from a public repository's snapshot into a folder beside
it (``../fetched/``, or ``$LWAY_FETCHED``), never into this repository.

    # in a session with the library's fetch tool: fetch github:ngchc/CameraSR, then
    .venv/bin/python bench/fetched_data.py city100-iphone /work/.mirror/ngchc+CameraSR/repo

City100's smartphone version (Chen et al., "Camera Lens Super-Resolution", CVPR 2019; repository
https://github.com/ngchc/CameraSR, commit 336cac1, MIT licence, no separate dataset licence): 100 real scene pairs
shot with an iPhone X at two focal lengths, the short one (``NNNL``) registered to the long one's grid (``NNNH``),
840 x 600. Why: ``../shared/data`` holds one real paired camera, the Nikon DSLR, and the engine's users bring phone
photos; the phone's pairs carry its own lens blur and in-camera processing, which no checkpoint has trained on.
The split is ``training_split.CITY100_IPHONE_TRAINING``. Files are copied byte for byte, renamed ``NNNH.png`` /
``NNNL.png`` (the snapshot's ``.PNG``) so that the City100 readers find them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from training_split import CITY100_IPHONE

ROOT = Path(__file__).resolve().parents[1]
FETCHED = Path(os.environ.get("LWAY_FETCHED") or ROOT.parent / "fetched")
CAMERASR_COMMIT = "336cac11f5ba409134b2bc5165e9ad6aa4a07e65"
PAIRS = 100


def city100_iphone_folder() -> Path:
    """Where the smartphone City100 lives; a clear error where it was never extracted."""
    folder = FETCHED / CITY100_IPHONE
    if not (folder / "100L.png").exists():
        raise FileNotFoundError(f"{folder} holds no smartphone City100: fetch github:ngchc/CameraSR and run "
                                f"`bench/fetched_data.py city100-iphone MIRROR` (see its docstring)")
    return folder


def extract_city100_iphone(mirror: Path, out: Path, commit: str = CAMERASR_COMMIT, pairs: int = PAIRS) -> int:
    """Copy the files of ``City100/City100_iPhoneX`` at ``commit`` (the pinned one) out of a git snapshot; returns
    the number of pairs written."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, pairs + 1):
        for side in "HL":
            blob = subprocess.run(["git", "-C", str(mirror), "show", f"{commit}:City100/City100_iPhoneX/"
                                   f"{i:03d}{side}.PNG"], check=True, capture_output=True).stdout
            (out / f"{i:03d}{side}.png").write_bytes(blob)
    (out / "SOURCE.txt").write_text(f"City100_iPhoneX from https://github.com/ngchc/CameraSR at {commit} "
                                    "(MIT licence), copied byte for byte by bench/fetched_data.py; research use.\n")
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["city100-iphone"])
    parser.add_argument("mirror", type=Path, help="the snapshot's git directory (the fetch tool's answer)")
    args = parser.parse_args()
    out = FETCHED / CITY100_IPHONE
    print(f"{extract_city100_iphone(args.mirror, out)} pairs written to {out}")


if __name__ == "__main__":
    main()
