"""An out-of-memory kill is reported as such (T4 promise 3: the daemon tells what happened).

A container with a 32 MiB allocation (memory+swap = memory, as T4 gives it) runs busybox
`tail /dev/zero` as PID 1: /dev/zero has no newline, so tail keeps one ever-growing line in
memory until the kernel's OOM killer ends it inside the container's cgroup.
"""
import time

import pytest

from cutover.allocations import Allocation
from cutover.expect import Equals

OOM_ALLOCATION = Allocation(name="oom-32m", memory=32 * 1024 * 1024)
WAIT_S = 20          # an OOM kill takes well under a second; a disabled OOM killer waits forever
# dockerd 20.10 can handle the container's exit before containerd's OOM event (the kernel's
# notification is asynchronous): the exit says OOMKilled false and the OOM event sets it just
# after. What the daemon reports once it has both is what counts; a daemon that never records
# the OOM kill still fails. Seen once here (a CI run, bookworm's dockerd 20.10.24).
SETTLE_S = 5


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
        late = ""
        deadline = time.monotonic() + SETTLE_S * driver.target.time_factor
        t0 = time.monotonic()
        while not st.oom_killed and time.monotonic() < deadline:
            time.sleep(0.2)
            st = driver.inspect(c.id)
            if st.oom_killed:
                late = f" (OOMKilled set {time.monotonic() - t0:.1f}s after the exit was reported)"
        check.attach("state", f"status {st.status}, exit code {st.exit_code}, OOMKilled {st.oom_killed}{late}, "
                              f"error {st.raw.get('State', {}).get('Error')!r}")
    check.expect({"state": Equals("exited"), "OOM killed": Equals(True), "exit code": Equals(137)},
                 {"state": st.status, "OOM killed": st.oom_killed, "exit code": st.exit_code})
