"""A docker SDK client whose exec/attach output is never lost.

docker-py reads the raw stream of exec/attach from the socket *under* http.client's buffer.
When the first output arrives in the same read as the response headers -- always through a
relay such as ssh, and now and then straight from dockerd or podman under load -- it sits in
that buffer and is lost: an exec then "succeeds" with exit 0 and empty output (seen in the
self-tests on docker-crun-lxcfs and podman-lxcfs). A one-byte buffer reads no further than
the headers' last newline.
"""
import http.client


class _ExactHeaders(http.client.HTTPResponse):
    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = sock.makefile("rb", buffering=1)


def unix_client(url, timeout=30):
    """A docker.DockerClient on a unix:// socket URL, reading response headers exactly."""
    import docker
    from docker.transport import unixconn

    class Connection(unixconn.UnixHTTPConnection):
        response_class = _ExactHeaders

    class Pool(unixconn.UnixHTTPConnectionPool):
        def _new_conn(self):
            return Connection(self.base_url, self.socket_path, self.timeout)

    class Adapter(unixconn.UnixHTTPAdapter):
        def get_connection(self, url, proxies=None):
            with self.pools.lock:
                pool = self.pools.get(url)
                if pool is None:
                    pool = self.pools[url] = Pool(url, self.socket_path, self.timeout, maxsize=self.max_pool_size)
                return pool

    client = docker.DockerClient(base_url=url, timeout=timeout)
    client.api._custom_adapter = Adapter(url.replace("unix://", "http+unix://"), timeout,
                                         max_pool_size=client.api._custom_adapter.max_pool_size)
    client.api.mount("http+docker://", client.api._custom_adapter)
    return client
