"""The proof that a daemon event happened (conformance/lifecycle/daemonprocs.py), on real
`ss -xapn` output of the lab: which process serves the endpoint, which ones it depends on."""
from conformance.lifecycle import daemonprocs as dp
from cutover.targets import Target

SOCK = "/var/lib/cutover-lab/run/docker.sock"
CTD = "/var/lib/cutover-lab/docker/exec/containerd/containerd.sock"


def ss(dockerd=100, containerd=200, systemd=False):
    users = f'(("dockerd",pid={dockerd},fd=7))' if not systemd else \
        f'(("systemd",pid=1,fd=50),("dockerd",pid={dockerd},fd=3))'
    return "\n".join([
        "Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process",
        f"u_str LISTEN 0      4096   {SOCK} 691732            * 0      users:{users}",
        f"u_str LISTEN 0      4096   {CTD} 691700            * 0      users:((\"containerd\",pid={containerd},fd=9))",
        f"u_str ESTAB  0      0      * 691739            * 692518 users:((\"dockerd\",pid={dockerd},fd=8))",
        f"u_str ESTAB  0      0      {CTD} 692518            * 691739 users:((\"containerd\",pid={containerd},fd=11))",
        # a client of dockerd (the harness): its server end names the daemon's socket, not "*"
        f"u_str ESTAB  0      0      {SOCK} 700001            * 700002 users:((\"dockerd\",pid={dockerd},fd=20))",
        "u_str ESTAB  0      0      * 700002            * 700001 users:((\"python\",pid=4242,fd=5))",
        "u_str ESTAB  0      0      * 800001            * 800002",
    ])


def procs(**kw):
    return dp.from_sockets(SOCK, dp.parse_ss(ss(**kw)))


def test_daemon_and_its_containerd():
    p = procs()
    assert p.server == {100: "dockerd"} and p.helpers == {200: "containerd"}
    assert p.text() == "daemon 100 (dockerd); helpers 200 (containerd)"


def test_socket_activation_holder_is_not_the_daemon():
    assert procs(systemd=True).server == {100: "dockerd"}


def test_restart_needs_a_new_daemon_process():
    assert dp.restarted(procs(), procs(dockerd=101)) is None
    assert "pid 100 (dockerd) served" in dp.restarted(procs(), procs())


def test_containerd_kill_needs_a_helper_gone():
    assert dp.helper_gone(procs(), procs(containerd=201)) is None
    assert "every helper of the daemon still runs" in dp.helper_gone(procs(), procs())
    lonely = dp.from_sockets(SOCK, dp.parse_ss(ss().splitlines()[1]))
    assert "connected to no helper" in dp.helper_gone(lonely, lonely)


def test_socket_path_of_endpoints():
    t = lambda ep: Target(name="t", driver="docker", endpoint=ep)
    assert dp.socket_path(t("unix:///run/x.sock")) == "/run/x.sock"
    assert dp.socket_path(t("ssh://root@h1")) == "/var/run/docker.sock"
    assert dp.socket_path(t("ssh://h1/run/podman.sock")) == "/run/podman.sock"
    assert dp.socket_path(t("tcp://127.0.0.1:2375")) is None
