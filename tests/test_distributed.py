"""``adapt``, ``upscale`` and ``pretrain`` under torchrun: 2 real processes on this CPU (gloo), started by the tests.

The fast tests check the assignment rules; the torchrun tests run the real commands: whole-set DDP against the
single-process trajectory, per-image sharding with a rank SIGKILLed mid-job and restarted by torchrun, upscale's
sharding and resume, and pretraining resumed on another world size. Workers run one torch thread each (two
threads per process on 2 cores beside another job slow everything several times over).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lway_engine.distributed import Topology, device_for, local_slice, shard, step_rng

TORCHRUN = Path(sys.executable).parent / "torchrun"
NAMES = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")  # sorted (folder order); 5: 2 ranks
# do not divide them

# Run by torchrun in place of ``python -m lway_engine``: logs every image finished to completion (attempt, rank,
# name), and with LWAY_TEST_KILL_AFTER=N SIGKILLs rank 1 of the first attempt right after its N-th finished image:
# a real kill, no cleanup, as a crashed node or an OOM killer would. Each barrier passed goes to leaves.log: the
# only one is the session's, before the group is torn down (a rank leaving alone can abort its peer at exit).
WORKER = """
import os, signal, sys
from pathlib import Path

import torch.distributed as dist

import lway_engine.inference.upscale as upscale
from lway_engine.adaptation.report import RunRecords

LOG, KILL_AFTER = Path(os.environ["LWAY_TEST_COMPLETIONS"]), int(os.environ.get("LWAY_TEST_KILL_AFTER", "0"))
RANK, ATTEMPT = os.environ["RANK"], os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
finished = []


def completed(name):
    with open(LOG, "a") as f:
        f.write(f"{ATTEMPT} {RANK} {name}\\n")
    finished.append(name)
    if KILL_AFTER and RANK == "1" and ATTEMPT == "0" and len(finished) == KILL_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)


write_record, write_image = RunRecords.write, upscale.write_image


def record(self, name, *args):
    write_record(self, name, *args)
    completed(name)


def image(path, *args, **kwargs):
    write_image(path, *args, **kwargs)
    completed(Path(path).stem)


def barrier(*args, **kwargs):
    passed(*args, **kwargs)
    with open(LOG.with_name("leaves.log"), "a") as f:
        f.write(f"{ATTEMPT} {RANK}\\n")


RunRecords.write, upscale.write_image, passed, dist.barrier = record, image, dist.barrier, barrier
from lway_engine.cli import app

app()
"""


def test_shards_cover_every_item_once_for_any_world_size() -> None:
    items = list(range(7))
    for world in range(1, 9):  # dividing, not dividing, and more ranks than items
        parts = [shard(items, Topology(rank, world, rank)) for rank in range(world)]
        assert sorted(i for part in parts for i in part) == items
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(items, Topology(1, 3, 1)) == [1, 4]  # a pure function of the list: a relaunch assigns alike


def test_global_batch_split_and_rank_streams() -> None:
    assert [local_slice(6, Topology(r, 3, r)) for r in range(3)] == [slice(0, 2), slice(2, 4), slice(4, 6)]
    with pytest.raises(ValueError, match="must divide evenly among the 4 processes"):
        local_slice(6, Topology(0, 4, 0))
    one = step_rng(3, 7, Topology()).integers(0, 1 << 30, 4)  # one process: the (seed, step) stream it always had
    assert np.array_equal(one, np.random.default_rng([3, 7]).integers(0, 1 << 30, 4))
    ranks = [step_rng(3, 7, Topology(r, 2, r)).integers(0, 1 << 30, 4) for r in range(2)]
    assert not np.array_equal(ranks[0], ranks[1]) and np.array_equal(ranks[0], one)  # NumPy drops a trailing 0


def test_torchrun_environment_and_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert Topology.from_env() == Topology() and not Topology().distributed
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    topology = Topology.from_env()
    assert topology == Topology(3, 4, 1) and topology.distributed and not topology.leader
    assert device_for("cpu", topology) == "cpu" and device_for("cuda:1", Topology()) == "cuda:1"
    with pytest.raises(ValueError, match="pass --device cuda"):
        device_for("cuda:1", topology)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="inconsistent torchrun environment"):
        Topology.from_env()


def test_data_parallel_adapt_trains_on_the_slice_of_the_topology_it_is_given(
        monkeypatch: pytest.MonkeyPatch, fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    from lway_engine.adaptation.adapter import Adapter
    from lway_engine.adaptation.loop import AdaptConfig, adapt
    from lway_engine.adaptation.loss import LWayLoss

    for key, value in (("RANK", "0"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "0")):  # must not be read: one source
        monkeypatch.setenv(key, value)
    crops = []

    def count_crops(module, args, output):  # training forwards run with gradients; the rank's crops only
        if torch.is_grad_enabled():
            crops.append(len(args[0]))
        return output

    fresh_compact.module.register_forward_hook(count_crops)
    arrays = [photo(name, 40) for name in ("astronaut", "coffee")]
    images = [torch.from_numpy(array.transpose(2, 0, 1).copy()) for array in arrays]
    config = AdaptConfig(iterations=2, lr=1e-4, batch=4, crop=32, data_parallel=True, select=False)
    Adapter(fresh_compact, small_reconstruction, topology=Topology(1, 2, 1), **{  # adapt's CLI passes its own
        name: getattr(config, name) for name in ("iterations", "lr", "batch", "crop", "data_parallel", "select")
    }).adapt(arrays)
    assert crops == [2, 2]
    crops.clear()
    adapt(fresh_compact, images, small_reconstruction, LWayLoss(lpips_alex), config, False, topology=Topology(1, 2, 1))
    assert crops == [2, 2]
    crops.clear()
    adapt(fresh_compact, images, small_reconstruction, LWayLoss(lpips_alex), config, False)  # one process
    assert crops == [4, 4]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, photo, lpips_alex) -> Path:
    """A folder with a tiny Real-ESRGAN (RRDBNet 1 block x 8 features), a small E+R checkpoint and 5 LR images."""
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    from lway_engine.media.images import Image, write_image
    from lway_engine.reconstruction import LWayReconstruction, ReconstructionConfig, save_checkpoint
    from lway_engine.reconstruction.checkpoint import read_checkpoint_info
    from lway_engine.reconstruction.error_model import ErrorModel, sidecar

    folder = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(0)
    save_file(ESRGAN(num_filters=8, num_blocks=1).state_dict(), str(folder / "tiny.safetensors"))
    save_checkpoint(folder / "er.safetensors", LWayReconstruction(ReconstructionConfig(
        scale=4, embed_dim=32, encoder_width=16, reconstructor_width=16, num_blocks=1)))
    # an error model expecting R to be exact: the explainability gate opens, so adapt's default candidate runs
    ErrorModel.constant(32, 1e-6, read_checkpoint_info(folder / "er.safetensors").content_sha256).save(
        sidecar(folder / "er.safetensors"))
    for name in NAMES:
        write_image(folder / "lr" / f"{name}.png", Image(photo(name, 48), None, 8))
    (folder / "worker.py").write_text(WORKER)
    return folder


def _torchrun(folder: Path, args: list[str], *extra: str, kill_after: int = 0) -> subprocess.CompletedProcess:
    """The command on 2 local processes (gloo), as a user starts it; completions are logged to completions.log
    (emptied first: a test that failed before reading its own log must not hand its lines to the next). Both
    ranks of the last attempt must have left the process group together, through its barrier."""
    for log in ("completions.log", "leaves.log"):
        (folder / log).unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LWAY_OFFLINE": "1", "LWAY_TEST_KILL_AFTER": str(kill_after),
           "LWAY_TEST_COMPLETIONS": str(folder / "completions.log")}
    command = [str(TORCHRUN), "--nproc-per-node", "2", "--standalone", *extra, str(folder / "worker.py"), *args]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    path = folder / "leaves.log"
    leaves = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    last = max((attempt for attempt, _ in leaves), default="0")
    assert sorted(rank for attempt, rank in leaves if attempt == last) == ["0", "1"], leaves
    return result


def _completions(folder: Path) -> list[tuple[str, str, str]]:
    path = folder / "completions.log"
    lines = [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def _adapt_args(folder: Path, out: str) -> list[str]:
    return ["adapt", str(folder / "lr"), "-o", str(folder / out), "--model", str(folder / "tiny.safetensors"),
            "--reconstructor", str(folder / "er.safetensors"), "--crop", "32", "--lr", "1e-3", "--amp", "fp32"]


def test_whole_set_ddp_follows_the_single_process_trajectory(job: Path) -> None:
    """Global batch 4 on 2 ranks (2 crops each) against batch 4 in one process: the same crops by construction
    (loop.py), so the same losses, held-out signals (scored by rank 0 with the DDP-trained weights) and weights."""
    from lway_engine.cli import app

    args = [*_adapt_args(job, "single"), "--iterations", "4", "--batch", "4"]
    single = CliRunner().invoke(app, args)
    assert single.exit_code == 0, single.output
    _torchrun(job, [*_adapt_args(job, "ddp"), "--iterations", "4", "--batch", "4"])
    reports = [json.loads((job / out / "report.json").read_text()) for out in ("single", "ddp")]
    assert reports[1]["settings"]["processes"] == 2 and reports[1]["settings"]["data_parallel"]
    runs = [report["decisions"]["all"]["runs"] for report in reports]
    assert list(runs[0]) == list(runs[1]) and len(runs[0]) == 1  # the default candidate ran, past the gate
    for name, log in runs[0].items():
        other = runs[1][name]
        assert len(log["loss"]) == 4 and log["loss"][-1] != log["loss"][0]
        for field in ("loss", "l1", "lpips"):
            torch.testing.assert_close(other[field], log[field], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close([p["value"] for p in other["signal"]], [p["value"] for p in log["signal"]],
                                   rtol=1e-3, atol=1e-5)
    assert reports[1]["decisions"]["all"]["reason"].split(":")[0] == reports[0]["decisions"]["all"]["reason"].split(
        ":")[0]
    weights = [load_file(str(job / out / "weights" / "adapted.safetensors")) for out in ("single", "ddp")]
    for key in weights[0]:  # Adam divides each gradient by its own scale: the all-reduce's float summation order
        # moves near-zero gradients' updates by up to ~1% of one step (lr 1e-3 x the candidate's 3 = 3e-3)
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-4, atol=1e-4)
    assert sorted(p.stem for p in (job / "ddp" / "sr_after").iterdir()) == sorted(NAMES)  # both ranks' shares


def test_per_image_job_killed_mid_run_is_finished_by_torchrun_restart(job: Path) -> None:
    """Rank 1 is SIGKILLed after its first image; torchrun restarts both ranks, which skip the recorded images.
    Every image ends complete, each finished exactly once, on the rank the assignment gives it (i % 2)."""
    result = _torchrun(job, [*_adapt_args(job, "per_image"), "--per-image", "--iterations", "2", "--batch", "2",
                             "--no-select"], "--max-restarts", "1", kill_after=1)
    finished = _completions(job)
    assert {attempt for attempt, _, _ in finished} == {"0", "1"}, finished  # the kill happened, then the restart
    assert Counter(name for _, _, name in finished) == Counter(NAMES)  # each image once, none twice
    assert all(int(rank) == NAMES.index(name) % 2 for _, rank, name in finished)
    out = job / "per_image"
    for sub, suffix in (("runs", ".json"), ("weights", ".safetensors"), ("sr_after", ".png"), ("compare", ".png")):
        assert sorted(p.name for p in (out / sub).glob(f"*{suffix}")) == sorted(n + suffix for n in NAMES), sub
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["runs"]) == sorted(NAMES) and report["settings"]["mode"] == "per-image"
    assert report["settings"]["complete from an earlier launch"] == sum(a == "0" for a, _, _ in finished)
    assert all(run["status"] == "done" for run in report["runs"].values()), result.stdout[-2000:]


def test_upscale_shards_every_image_once_and_a_rerun_skips_them(job: Path) -> None:
    from lway_engine.cli import app

    args = ["upscale", str(job / "lr"), "-o", str(job / "up"), "--model", str(job / "tiny.safetensors"),
            "--tile", "0"]
    result = _torchrun(job, args)
    finished = _completions(job)
    assert sorted(name for _, _, name in finished) == sorted(NAMES)
    assert all(int(rank) == NAMES.index(name) % 2 for _, rank, name in finished)
    assert "5 of 5 images written" in result.stdout and "over 2 processes" in result.stdout
    before = {p.name: p.stat().st_mtime_ns for p in (job / "up").iterdir()}
    rerun = CliRunner().invoke(app, args)  # a plain rerun in one process: nothing left to do
    assert rerun.exit_code == 0 and "5 of them already there" in rerun.output, rerun.output
    assert {p.name: p.stat().st_mtime_ns for p in (job / "up").iterdir()} == before


def test_pretraining_under_ddp_resumes_on_one_process(job: Path, photo) -> None:
    from lway_engine.cli import app
    from lway_engine.media.images import Image, write_image
    from lway_engine.reconstruction import load_checkpoint

    for name in ("astronaut", "coffee", "chelsea"):
        write_image(job / "hr" / f"{name}.png", Image(photo(name, 160), None, 8))
    out = job / "er-trained.safetensors"
    args = ["pretrain", "--hr", str(job / "hr"), "-o", str(out), "--batch", "2", "--crop", "32",
            "--checkpoint-every", "2", "--workers", "0", "--embed-dim", "16", "--blocks", "1", "--width", "8",
            "--amp", "fp32", "--lpips-weight", "0.1"]
    _torchrun(job, [*args, "--steps", "4"])
    log = json.loads(out.with_suffix(".json").read_text())
    assert len(log["train"]) == 4 and log["launches"][0]["processes"] == 2
    resumed = CliRunner().invoke(app, [*args, "--steps", "6", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    log = json.loads(out.with_suffix(".json").read_text())
    assert [launch["processes"] for launch in log["launches"]] == [2, 1] and log["launches"][1]["from_step"] == 4
    assert len(log["train"]) == 6 and [v[0] for v in log["val"]] == [2, 4, 6]
    assert load_checkpoint(out, expect_scale=4).config.embed_dim == 16
