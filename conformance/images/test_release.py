"""Immutability and release: a new container starts from its image's files alone (T4 promise 4).

The old container (the app container the build checks look at) is written to everywhere as
root (/, /app, /data, /tmp, /etc, a home directory), a file is deleted and a mode changed, then
it is stopped and destroyed. The new container -- of the same image, or of the next version for
a release -- must show exactly the tree its image holds, computed from the image's own layers.
"""
import pytest

from cutover import images
from cutover.expect import Equals

pytestmark = pytest.mark.slow_scenario


def _compare(check, expected, observed):
    want, got, diff, long_diff = images.compare_trees(expected, observed, images.AppImage.workdir)
    check.attach("differences", long_diff)
    check.attach("new container's tree", images.tree_text(observed))
    written = sorted(p for p in observed if p.endswith("/written") or p == "/cutover-written")
    check.expect({"tree": Equals(want), "differences": Equals("none"), "files the old container wrote": Equals([])},
                 {"tree": got, "differences": diff, "files the old container wrote": written})


@pytest.mark.check("img.immutable")
def test_immutable(image_scenario, check):
    built, tree = image_scenario.built(), image_scenario.immutable()
    check.note(f"a container of {image_scenario.ref['v1']} written to and destroyed, then a new one")
    _compare(check, built["tree"], tree)


@pytest.mark.check("img.release")
def test_release(image_scenario, check):
    rel = image_scenario.release()
    check.note(f"a container of {image_scenario.ref['v1']} written to and destroyed, then one of {image_scenario.ref['v2']}")
    _compare(check, rel["expected"], rel["observed"])
