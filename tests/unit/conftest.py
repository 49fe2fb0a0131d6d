"""Unit tests run no lab, and leave nothing on the machine."""
import pytest


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    """The run records of any `cutover run` a unit test starts (a run that dies keeps its record,
    for the next run to sweep) go to a directory of the test's, never into the machine's
    $CUTOVER_STATE (/var/lib/cutover-state)."""
    monkeypatch.setenv("CUTOVER_STATE", str(tmp_path / "state"))
