#!/usr/bin/env bash
# The test command: install what is missing, then run Cutover's own tests (unit tests of the
# pure logic and self-tests that drive the real lab runtimes). Extra arguments go to pytest.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
./setup.sh || exit 2
.venv/bin/python -m pytest tests -p no:cacheprovider --durations=40 "$@"
rc=$?
if [ $rc = 5 ]; then
  echo "selftest: pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit $rc
