"""The leak check and the dead-run sweep over a fake runtime: every labelled kind is found and
named, unlabelled objects are left alone, and a dead run is forgotten only once swept."""
import types

import pytest

from cutover import leaks, runs
from fixtures import session


class FakeDriver:
    """Containers and images by label, as the driver API has them; volumes and networks
    through an Engine-API-like client, as cutover.leaks reads them."""
    name = "docker"

    def __init__(self, target="docker", host="local://", broken=False):
        self.target = types.SimpleNamespace(name=target, host=host)
        self.broken = broken
        self.objects = {"container": {}, "volume": {}, "network": {}, "image": {}}
        self.client = types.SimpleNamespace(api=self)

    def add(self, kind, ident, **labels):
        self.objects[kind][ident] = labels

    def _labelled(self, kind, want):
        if self.broken:
            raise ConnectionError(f"host {self.target.host} unreachable")
        return [i for i, l in self.objects[kind].items() if all(l.get(k) == v for k, v in want.items())]

    def list_containers(self, want):
        return self._labelled("container", want)

    def list_images(self, labels=None):
        return self._labelled("image", labels or {})

    def inspect(self, cid):
        return types.SimpleNamespace(raw={"Config": {"Labels": self.objects["container"][cid]}})

    def inspect_image(self, image_id):
        return {"Config": {"Labels": self.objects["image"][image_id]}}

    def volumes(self, filters):
        k, v = filters["label"][0].split("=")
        return {"Volumes": [{"Name": n, "Labels": self.objects["volume"][n]} for n in self._labelled("volume", {k: v})]}

    def networks(self, filters):
        k, v = filters["label"][0].split("=")
        return [{"Name": n, "Id": n, "Labels": self.objects["network"][n]} for n in self._labelled("network", {k: v})]

    def remove(self, cid):
        del self.objects["container"][cid]

    def remove_volume(self, name):
        del self.objects["volume"][name]

    def remove_network(self, name):
        del self.objects["network"][name]

    def remove_image(self, ref):
        del self.objects["image"][ref]


def leaky(run_id="r1"):
    d = FakeDriver()
    for kind in ("container", "volume", "network", "image"):
        d.add(kind, f"{kind}-of-run", **{"cutover.run": run_id, "cutover.test": f"test_{kind}"})
        d.add(kind, f"{kind}-of-another-run", **{"cutover.run": "other", "cutover.test": "x"})
        d.add(kind, f"{kind}-unlabelled")
    return d


def test_every_labelled_kind_is_found_named_and_removed():
    d = leaky()
    found = leaks.sweep(d, "r1")
    assert sorted((o["kind"], o["id"], o["test"]) for o in found) == sorted(
        (k, f"{k}-of-run", f"test_{k}") for k in leaks.KINDS)
    for kind, objs in d.objects.items():
        assert set(objs) == {f"{kind}-of-another-run", f"{kind}-unlabelled"}


def config_with(monkeypatch, drivers, tmp_path):
    monkeypatch.setattr(runs, "STATE", str(tmp_path))
    monkeypatch.setattr(session, "_endpoints", lambda ctx: drivers)
    return types.SimpleNamespace(cutover=types.SimpleNamespace(run_id="now", targets={}))


def dead(run_id):
    runs.release(run_id, runs.hold(run_id), forget=False)     # a run that died: lock free, record kept


def test_dead_run_is_forgotten_only_when_its_sweep_succeeded(monkeypatch, tmp_path):
    good, bad = leaky("gone"), FakeDriver(target="h2-docker", host="ssh://h2", broken=True)
    config = config_with(monkeypatch, [good, bad], tmp_path)
    dead("gone")
    swept, kept = session.sweep_dead_runs(config)
    assert [o["id"] for o in swept["gone"]] and "unreachable" in kept["gone"]
    assert "gone" in runs.dead_runs(), "a sweep that could not reach a target must keep the record"
    bad.broken = False
    swept, kept = session.sweep_dead_runs(config)
    assert kept == {} and "gone" not in runs.dead_runs()


def test_leak_check_is_per_host(monkeypatch, tmp_path):
    good, bad = leaky("now"), FakeDriver(target="h2-docker", host="ssh://h2", broken=True)
    config = config_with(monkeypatch, [good, bad], tmp_path)
    found, incomplete = session.leak_check(config)
    assert {(l["kind"], l["test"], l["host"]) for l in found} == {(k, f"test_{k}", "local://") for k in leaks.KINDS}
    assert list(incomplete) == ["ssh://h2"] and "h2-docker" in incomplete["ssh://h2"]
    assert not good.list_containers({"cutover.run": "now"}), "the leak check removes what it found"


@pytest.mark.parametrize("kind", leaks.KINDS)
def test_an_object_that_will_not_go_is_an_error(kind):
    d = leaky()
    setattr(d, {"container": "remove", "volume": "remove_volume", "network": "remove_network",
                "image": "remove_image"}[kind], lambda ident: None)
    with pytest.raises(RuntimeError, match="remain after removal"):
        leaks.sweep(d, "r1")
