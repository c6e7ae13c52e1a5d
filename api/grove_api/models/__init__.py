"""Typed request and response bodies, with Oakestra's field names."""
