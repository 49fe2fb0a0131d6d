"""What a run left behind on a runtime: every object carrying its run label, and removal.

The end-of-run leak check and the sweep of runs that died both use this, so both cover the
same objects: containers, volumes, networks and images labelled `cutover.run=<id>`, each
named by the test that made it (label `cutover.test`, "?" when absent, e.g. the images
suite's shared images). An object without the run's label is never listed, so never removed.

The drivers list containers and images by label, but volumes only by name and networks not
at all; for those this module reads the labels where each runtime keeps them: the Engine
API's label filters (docker and podman drivers, through the driver's own SDK client) and
the LXC driver's volume.json next to each volume. Mounts of removed containers under a
daemon's data root are the daemon's to clean up and are not looked for here.
"""
import json

RUN_LABEL = "cutover.run"
TEST_LABEL = "cutover.test"
KINDS = ("container", "volume", "network", "image")


def find(driver, run_id):
    """[{"kind", "id", "test"}] of this run's objects on the driver's runtime.

    Raises whatever the driver raises when the runtime cannot be asked: an object list that
    could not be read is not an empty one."""
    want = {RUN_LABEL: run_id}
    out = [_obj("container", cid, _container_labels(driver, cid)) for cid in driver.list_containers(want)]
    api = _engine_api(driver)
    if api is not None:
        filters = {"label": [f"{RUN_LABEL}={run_id}"]}
        for v in (api.volumes(filters=filters) or {}).get("Volumes") or []:
            out.append(_obj("volume", v["Name"], v.get("Labels")))
        for n in api.networks(filters=filters) or []:
            out.append(_obj("network", n.get("Name") or n["Id"], n.get("Labels")))
        for image_id in driver.list_images(labels=want):
            out.append(_obj("image", image_id, _image_labels(api, image_id)))
    elif driver.name == "lxc":
        for name, labels in _lxc_volumes(driver):
            if labels.get(RUN_LABEL) == run_id:
                out.append(_obj("volume", name, labels))
    return out


def remove(driver, obj):
    """Remove one object find() returned (containers first: they hold volumes and images)."""
    kind = obj["kind"]
    if kind == "container":
        driver.remove(obj["id"])
    elif kind == "volume":
        driver.remove_volume(obj["id"])
    elif kind == "network":
        _engine_api(driver).remove_network(obj["id"])
    elif kind == "image":
        driver.remove_image(obj["id"])


def sweep(driver, run_id):
    """Find and remove this run's objects; returns what was found. Raises when the runtime
    cannot be asked or an object cannot be removed (the caller keeps the run on record)."""
    found = sorted(find(driver, run_id), key=lambda o: KINDS.index(o["kind"]))
    for obj in found:
        remove(driver, obj)
    left = find(driver, run_id)
    if left:
        raise RuntimeError(f"{len(left)} object(s) of run {run_id} remain after removal: "
                           + ", ".join(f"{o['kind']} {o['id'][:24]}" for o in left[:5]))
    return found


def _obj(kind, ident, labels):
    return {"kind": kind, "id": str(ident), "test": (labels or {}).get(TEST_LABEL, "?")}


def _engine_api(driver):
    """The docker SDK's low-level client of a docker/podman driver, else None."""
    client = getattr(driver, "client", None) if driver.name in ("docker", "podman") else None
    return getattr(client, "api", None)


def _container_labels(driver, cid):
    raw = driver.inspect(cid).raw or {}
    return (raw.get("Config") or {}).get("Labels") or {}


def _image_labels(api, image_id):
    try:
        return ((api.inspect_image(image_id) or {}).get("Config") or {}).get("Labels") or {}
    except Exception:       # gone meanwhile: its name is enough
        return {}


def _lxc_volumes(driver):
    """(name, labels) of the LXC driver's volumes (a directory each, labels in volume.json)."""
    script = (f"for f in '{driver.support}'/volumes/*/volume.json; do [ -f \"$f\" ] || continue; "
              f"printf '%s\\t' \"$(basename \"$(dirname \"$f\")\")\"; tr -d '\\n' < \"$f\"; echo; done; exit 0")
    res = driver._run(script, "list volumes")
    if res.rc != 0:
        raise RuntimeError(f"list volumes on target '{driver.target.name}': exit {res.rc}: {res.stderr.strip()[:200]}")
    out = []
    for line in res.stdout.splitlines():
        name, _, text = line.partition("\t")
        try:
            labels = json.loads(text)
        except ValueError:
            labels = {}
        out.append((name, labels if isinstance(labels, dict) else {}))
    return out
