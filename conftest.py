"""pytest entry point for Cutover: options and fixtures live in fixtures/."""
pytest_plugins = [
    "fixtures.options",
    "fixtures.runtime",
    "fixtures.recorder",
    "fixtures.session",
]
