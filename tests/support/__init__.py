"""Helpers that tests of more than one tier share (fixtures live in conftest.py files)."""
