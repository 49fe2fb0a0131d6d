"""The lab's image registry: Debian's docker-registry (distribution 2.8) on loopback only.

Its own config.yml and storage directory under the lab directory, no auth, no TLS: dockerd
treats 127.0.0.0/8 registries as insecure by default, so no daemon.json change is needed.
The port is chosen once (a free one the kernel hands out) and kept in `<lab>/registry/port`
so the targets file stays valid across restarts; another free one is taken only if some
other process has grabbed it meanwhile.
"""
import os
import socket
import urllib.request

import yaml

from cutover.lab.daemon import Daemon

HOST = "127.0.0.1"


def _free(port):
    s = socket.socket()
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _any_free_port():
    s = socket.socket()
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Registry(Daemon):
    kind = "registry"
    writes_pidfile = False     # docker-registry writes none: the lab records the pid it started

    @property
    def storage(self):
        return os.path.join(self.dir, "storage")

    @property
    def config_path(self):
        return os.path.join(self.dir, "config.yml")

    @property
    def port_file(self):
        return os.path.join(self.dir, "port")

    @property
    def port(self):
        try:
            with open(self.port_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    @property
    def address(self):
        return f"{HOST}:{self.port}" if self.port else None

    def config(self):
        return {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            # No blob descriptor cache: every read goes to the files on disk, so what the
            # storage holds is what the registry serves (the tamper checks rely on it).
            "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True}},
            "http": {"addr": self.address},
        }

    def prepare(self):
        os.makedirs(self.storage, exist_ok=True)
        if not self.port or not _free(self.port):
            with open(self.port_file, "w") as f:
                f.write(str(_any_free_port()))
        with open(self.config_path, "w") as f:
            yaml.safe_dump(self.config(), f, sort_keys=False)

    def argv(self):
        # The config path names the lab directory: that is how stop() knows the pid is ours.
        return ["docker-registry", "serve", self.config_path]

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def entry(self):
        """The `registry:` entry of the targets the lab serves."""
        return {"address": self.address, "storage": self.storage, "pull_by": "tag"}
