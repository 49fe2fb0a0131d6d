"""Drivers: how Cutover talks to each kind of runtime. Suites only ever use these."""
from cutover.errors import CutoverError

# name -> "module:Class"; imported lazily so one driver's dependencies never break another.
DRIVERS = {
    "docker": "cutover.drivers.docker:DockerDriver",
    "podman": "cutover.drivers.podman:PodmanDriver",
    "lxc": "cutover.drivers.lxc:LxcDriver",
}


def driver_for(target, host=None, timeout=30):
    import importlib
    spec = DRIVERS.get(target.driver)
    if spec is None:
        raise CutoverError(f"target '{target.name}': unknown driver '{target.driver}' (known: {', '.join(sorted(DRIVERS))})")
    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)(target, host=host, timeout=timeout)
