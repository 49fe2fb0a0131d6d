"""Loop file systems made and released at once by parallel workers (xdist, -n 2 runs) do not
disturb each other.

A mounted loop root is left to autoclear, so its device number is free the moment it is
unmounted and the next make() may take it; a release that then detached "its" device by number
pulled the neighbour's from under mkfs ("Device size reported to be zero": dq.df-root ended as a
harness error in CI). Before the fix this failed 3 runs out of 3 with 5 to 11 broken cycles.
"""
import multiprocessing
import os
import shutil

from cutover import looproot
from cutover.lab.lab import Lab

WORKERS, CYCLES = 4, 40


def _cycle(owner, worker, out):
    errors = []
    for k in range(CYCLES):
        image, mp = os.path.join(owner, f"r{worker}-{k}.img"), os.path.join(owner, f"r{worker}-{k}")
        try:
            looproot.make(owner, image, mp, 32 * 2 ** 20, "ext4")
        except Exception as e:           # noqa: BLE001 - the test reports every one
            errors.append(str(e)[:200])
        looproot.release(owner, image)
    out.put(errors)


def test_parallel_make_and_release_do_not_collide():
    # Under the lab directory, so that `lab down` frees anything a crash here leaves.
    owner = os.path.join(Lab().root, "loops-race")
    out = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(target=_cycle, args=(owner, w, out))
             for w in range(WORKERS)]
    try:
        for p in procs:
            p.start()
        errors = sum((out.get(timeout=600) for _ in procs), [])
        for p in procs:
            p.join(timeout=60)
        assert errors == [], f"{len(errors)} of {WORKERS * CYCLES} cycles failed: {errors[:3]}"
        assert looproot.devices_under(owner, [owner]) == []
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        looproot.release_under(owner, [owner])
        shutil.rmtree(owner, ignore_errors=True)
