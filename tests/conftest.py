"""Shared fixtures live in tests/support/ as plugins, one module per real part."""

pytest_plugins = [
    "tests.support.moto_server",
    "tests.support.slack_receiver",
    "tests.support.lambda_env",
    "tests.support.github_standin",
]
