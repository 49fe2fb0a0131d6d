"""Parsers of what probes read, on real samples captured from the lab."""
import pytest

from cutover import parse

MEMINFO = "MemTotal:         262144 kB\nMemFree:          261464 kB\nMemAvailable:     261464 kB\nActive(anon):  4 kB\n"
FREE = ("              total        used        free      shared  buff/cache   available\n"
        "Mem:       24684084      139220    23246968        8872     1297896    24294064\n")
TOP = "Mem: 1188K used, 260956K free, 0K shrd, 0K buff, 4K cached\nCPU:   0% usr\n"
DISKSTATS = (" 254       0 vda 26427 5457 1631954 4233 4987 9767 1119456 4616 0 3208 9336\n"
             "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0\n")
NETDEV = ("Inter-|   Receive   |  Transmit\n face |bytes    packets|bytes\n"
          "    lo:       0       0    0\n  eth0: 10 1 0\n")


def test_meminfo():
    assert parse.meminfo(MEMINFO) == {"MemTotal": 262144, "MemFree": 261464, "MemAvailable": 261464,
                                      "Active(anon)": 4}


def test_free_and_top():
    assert parse.free_total_kib(FREE) == 24684084
    assert parse.top_memory_kib(TOP) == 1188 + 260956
    with pytest.raises(ValueError):
        parse.free_total_kib("nothing")


@pytest.mark.parametrize("text,seconds", [
    (" 11:43:36 up 1 min,  0 users,  load average: 0.21, 0.09, 0.03", 60),
    (" 11:43:36 up 2:03,  1 user,  load average: 0.21, 0.09, 0.03", 2 * 3600 + 3 * 60),
    (" 11:43:36 up 3 days,  4:05,  0 users,  load average: 1.00, 0.50, 0.20", 3 * 86400 + 4 * 3600 + 5 * 60),
    (" 11:43:36 up 12 days, 10 min,  load average: 0.00, 0.00, 0.00", 12 * 86400 + 600),
])
def test_uptime_cmd(text, seconds):
    assert parse.uptime_cmd_seconds(text) == seconds


def test_cpu_lists_and_counts():
    assert parse.cpu_list("0-1,3\n") == [0, 1, 3]
    assert parse.cpuinfo_processors("processor\t: 0\nmodel\nprocessor\t: 1\n") == 2
    assert parse.stat_cpus("cpu  1 2 3\ncpu0 1 2\ncpu1 3 4\nintr 5\n") == 2


def test_load_disk_swap_net():
    assert parse.loadavg("0.21 0.09 0.03 2/116 22") == (0.21, 0.09, 0.03)
    assert parse.uptime_cmd_load1("up 1 min,  load average: 1.41, 0.5, 0.1") == 1.41
    assert parse.diskstats_sectors(DISKSTATS) == {"vda": 1631954 + 1119456, "loop0": 0}
    assert parse.swaps("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 100 0 -2\n") == ["/swapfile"]
    assert parse.net_dev(NETDEV) == ["eth0", "lo"]
