"""An epoch over a folder of PNGs: ``ek.data.from_folder`` against the usual hand pipeline.

The folder: 2,000 RGB 32×32 PNGs in three class sub-folders (200 for ``--smoke``), written
once into a temporary directory. The hand pipeline is what one writes with torchvision's
``ImageFolder`` in mind, without torchvision: a ``Dataset`` whose ``__getitem__`` opens the
file with Pillow, converts it to RGB and returns ``(float tensor in [0, 1], label)``, read by
a ``DataLoader`` (batch 128, shuffled) with the same worker count as ebmkit. Every epoch
sums each batch so both sides touch every pixel; the sums must agree.

Three rows, one per way ebmkit reads the folder:

- first epoch, decode included: ``from_folder`` (which decodes the folder once, with the
  same workers, into memory) plus one shuffled pass over it, against one hand epoch;
- every later epoch: a shuffled pass over the decoded tensors, against one hand epoch
  (which decodes every image again);
- on disk (``in_memory=False``, for folders over 1 GiB): items decoded each epoch through
  the ``DataLoader`` the trainer builds (persistent workers), against one hand epoch.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .harness import Result

BATCH, WORKERS = 128, 2


def _write_folder(root: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for i in range(n):
        kind = ("disc", "square", "stripe")[i % 3]
        (root / kind).mkdir(exist_ok=True)
        cx, cy, r = rng.uniform(10, 22), rng.uniform(10, 22), rng.uniform(5, 9)
        mask = {"disc": (xx - cx) ** 2 + (yy - cy) ** 2 < r * r,
                "square": (abs(xx - cx) < r) & (abs(yy - cy) < r),
                "stripe": ((xx + yy + int(r)) // 4) % 2 == 0}[kind]
        img = np.where(mask[..., None], rng.uniform(0.4, 1, 3), rng.uniform(0, 0.3, 3))
        img = (img * 255 + rng.normal(0, 6, img.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / kind / f"{i:05d}.png")


class HandFolder(torch.utils.data.Dataset):
    """The usual hand-written image-folder dataset: decode with Pillow in ``__getitem__``."""

    def __init__(self, root: Path) -> None:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        self.items = [(str(p), i) for i, c in enumerate(classes)
                      for p in sorted((root / c).glob("*.png"))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1), label


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek
    from ebmkit.train.batching import make_source
    from ebmkit.train.distributed import Dist

    n, repeats = (200, 1) if smoke else (2000, 5)
    cpu = torch.device("cpu")
    # The timed work is decoding and batching; the main process's per-batch sums use one
    # thread, on both sides, so that a busy machine's thread barriers do not time them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_folder(root, n)
        hand = torch.utils.data.DataLoader(HandFolder(root), batch_size=BATCH, shuffle=True,
                                           num_workers=WORKERS,
                                           generator=torch.Generator().manual_seed(0))
        gen = torch.Generator().manual_seed(0)
        memory = ek.data.from_folder(root, workers=WORKERS)
        disk = ek.data.from_folder(root, in_memory=False, workers=WORKERS)
        disk_source = make_source(disk, batch_size=BATCH, device=cpu, generator=gen,
                                  dist=Dist(), seed=0, train=True)

        def hand_epoch() -> float:
            return sum(float(y.sum()) for y, _ in hand)

        def first_epoch() -> float:
            data = ek.data.from_folder(root, workers=WORKERS)
            return sum(float(b["y"].sum()) for b in data.batches(BATCH, shuffle=True,
                                                                 generator=gen))

        def later_epoch() -> float:
            return sum(float(b["y"].sum()) for b in memory.batches(BATCH, shuffle=True,
                                                                   generator=gen))

        def disk_epoch() -> float:
            return sum(float(b["y"].sum()) for b in disk_source.epoch(0))

        fns = {"hand": hand_epoch, "first": first_epoch, "later": later_epoch,
               "disk": disk_epoch}
        times: dict[str, list[float]] = {k: [] for k in fns}
        sums: dict[str, float] = {}
        names = list(fns)
        for i in range(repeats + 1):  # one untimed round: workers' first start, file cache
            for name in names if i % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                sums[name] = fns[name]()
                if i:
                    times[name].append(time.perf_counter() - start)
        ref = sums["hand"]
        agree = all(abs(v - ref) <= 1e-4 * abs(ref) for v in sums.values())
    torch.set_num_threads(threads)
    med = {k: statistics.median(v) for k, v in times.items()}
    note = (f"{n} RGB 32×32 PNGs, batch {BATCH}, {WORKERS} DataLoader workers both sides, "
            f"median of {repeats}; pixel sums agree: {agree}")
    hand_ref = "Pillow Dataset + DataLoader"
    return [
        Result("PNG folder: first epoch (decode included)", med["first"], med["hand"],
               hand_ref, 1.0, notes=note),
        Result("PNG folder: each later epoch (in memory)", med["later"], med["hand"],
               hand_ref, 1.0, notes=note),
        Result("PNG folder: on disk, each epoch", med["disk"], med["hand"], hand_ref, 1.0,
               notes=note + "; persistent workers on ebmkit's side"),
    ]


if __name__ == "__main__":  # python -m bench.bench_data
    for r in run(smoke=bool(os.environ.get("SMOKE"))):
        print(f"{r.name}: {r.ebmkit_s:.3f}s vs {r.reference_s:.3f}s = {r.ratio:.2f}x "
              f"({r.notes})")
