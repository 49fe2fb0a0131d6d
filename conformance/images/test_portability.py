"""Portability: an image built by one target runs the same on every target (T4 promise 4).

One reference app image, built by the first target of the targets file that can build and
save images, is run by every target that can run images (saved and loaded into each other
daemon). Each run must show the tree the image holds (computed from its layers) and print
what the builder's own run printed. Targets added to the targets file (podman, crun, other
hosts) join without a change here: each is one record of this check. With targets on several
hosts, the image is saved on the builder's host and loaded into every other host's daemon
(over the target's own endpoint, no registry needed), so each record compares two hosts.
"""
import pytest

from cutover import images
from cutover.expect import Equals

pytestmark = pytest.mark.slow_scenario


@pytest.mark.check("img.portable")
def test_portable(image_scenario, check):
    run = image_scenario.portable()
    want, got, diff, long_diff = images.compare_trees(run["expected"], run["tree"], images.AppImage.workdir)
    check.attach("differences", long_diff)
    check.attach("entry lines", f"builder {run['builder']} on {run['builder_host']}: {run['builder_entry']}\n"
                                f"here, {image_scenario.t.name} on {run['host']}: {run['entry']}")
    across = f" (another host: {run['builder_host']} -> {run['host']})" if run["builder_host"] != run["host"] else ""
    check.note(f"the image built by {run['builder']}, run on {image_scenario.t.name}{across}")
    check.expect({"tree": Equals(want), "differences": Equals("none"), "output": Equals(run["builder_entry"])},
                 {"tree": got, "differences": diff, "output": run["entry"]})
