"""An out-of-memory kill is reported as such (T4 promise 3: the daemon tells what happened).

A container with a 32 MiB allocation (memory+swap = memory, as T4 gives it) runs busybox
`tail /dev/zero` as PID 1: /dev/zero has no newline, so tail keeps one ever-growing line in
memory until the kernel's OOM killer ends it inside the container's cgroup.
"""
import pytest

from cutover.allocations import Allocation
from cutover.expect import Equals

OOM_ALLOCATION = Allocation(name="oom-32m", memory=32 * 1024 * 1024)
WAIT_S = 20          # an OOM kill takes well under a second; a disabled OOM killer waits forever


@pytest.mark.check("life.oom-kill")
def test_oom_kill_reported(containers, driver, check):
    driver.require("exit-status", "report a container's exit code or OOM kill")
    c = containers.run(driver, OOM_ALLOCATION, command=["tail", "/dev/zero"])
    st = driver.wait_exit(c.id, WAIT_S)
    check.note(f"tail /dev/zero under {OOM_ALLOCATION.describe()} (memory+swap = memory)")
    if st is None:
        st = driver.inspect(c.id)
        check.attach("state", f"still {st.status} after {WAIT_S}s")
    else:
        check.attach("state", f"status {st.status}, exit code {st.exit_code}, OOMKilled {st.oom_killed}, "
                              f"error {st.raw.get('State', {}).get('Error')!r}")
    check.expect({"state": Equals("exited"), "OOM killed": Equals(True), "exit code": Equals(137)},
                 {"state": st.status, "OOM killed": st.oom_killed, "exit code": st.exit_code})
