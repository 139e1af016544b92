"""Register the `containers` marker, and print what the container test measured at the end."""

from tests.containers.docker_env import REPORT


def pytest_configure(config):
    # Also listed in pyproject.toml; registered here so this folder runs on its own.
    config.addinivalue_line(
        "markers",
        "containers: builds the images and runs docker-compose.yml on a real Docker engine "
        "(deselect with -m 'not containers')",
    )


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("container test: images and timings")
        for line in REPORT:
            terminalreporter.write_line(line)
