"""pytest entry point for Cutover: options and fixtures live in fixtures/."""
pytest_plugins = [
    "fixtures.options",
    "fixtures.daemonlock",     # before runtime, which imports it
    "fixtures.runtime",
    "fixtures.pairs",          # coexistence: --pair A,B
    "fixtures.images",         # the images suite's shared scenario and end-of-run sweep
    "fixtures.recorder",
    "fixtures.session",
    "fixtures.fleet",
]
