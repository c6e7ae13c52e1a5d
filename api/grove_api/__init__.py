"""Grove's root orchestrator: Oakestra's REST API, deploying through ansible-runner."""

__version__ = "0.1.0"
