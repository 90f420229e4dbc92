"""The training split of ``../shared/data``, in one place: what E+R pretraining (``bench/pretrain_broad.sh``,
``bench/gpu_pretrain.py pack``) and the error model's fit (``bench/fit_error_model.py``) may see.

Training: Urban100_HR_jpeg and Manga109_HR_jpeg (all), Sun_Hays80 files 1-40 by name, City100 pairs 001-030.
Everything else evaluates (Kodak24, CBSD68, Set14, Sun_Hays80 41-80, City100 031-060). The fetched smartphone
City100 (``bench/fetched_data.py``, outside ``../shared/data``) splits the same way: pairs 001-050 may train, 051-100
evaluate (the bundled checkpoint has trained on none of them). Names sort bytewise, as ``LC_ALL=C sort`` does, so a
resumed run sees its files in the same order.

    .venv/bin/python bench/training_split.py [DATA]      # NUL-separated `--hr F` / `--pairs F` arguments
"""

from __future__ import annotations

import sys
from pathlib import Path

HR_FOLDERS = ("Urban100_HR_jpeg", "Manga109_HR_jpeg")
SUN = "Sun_Hays80"
SUN_TRAINING = 40  # Sun_Hays80's first 40 files by name train; the rest evaluate
CITY100 = "City100_NikonD5500_crop768"
CITY100_TRAINING = range(1, 31)  # pairs 001-030 train; 031-060 evaluate
CITY100_IPHONE = "City100_iPhoneX"  # the smartphone version, fetched beside ../shared/data (bench/fetched_data.py)
CITY100_IPHONE_TRAINING = range(1, 51)  # pairs 001-050 may train; 051-100 evaluate


def sun_files(data: Path) -> list[Path]:
    """Sun_Hays80's training half."""
    return sorted(p for p in (data / SUN).iterdir() if p.suffix in (".jpg", ".png"))[:SUN_TRAINING]


def hr_files(data: Path) -> list[Path]:
    """The HR-only training images: Urban100, Manga109, then Sun_Hays80's training half."""
    return [p for name in HR_FOLDERS for p in sorted((data / name).glob("*.jpg"))] + sun_files(data)


def city100_hr_files(data: Path) -> list[Path]:
    """The HR files of City100's training pairs (each LR sits beside it as ``NNNL.png``)."""
    return [data / CITY100 / f"{i:03d}H.png" for i in CITY100_TRAINING]


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
    args = [a for p in hr_files(data) for a in ("--hr", str(p))]
    args += [a for p in city100_hr_files(data) for a in ("--pairs", str(p))]
    sys.stdout.write("\0".join(args) + "\0")


if __name__ == "__main__":
    main()
