"""Deployment jobs: the queue in the store, one runner at a time per inventory, ansible-runner."""
