"""Reusable checks for tests that drive worker hosts (test bed or a single development host)."""
