"""Shared helpers for the test suite: paths to the real tools and managed server processes."""
