"""Fixtures for every test directory: the real model server (``model_server``, tests/realmodel.py)."""

pytest_plugins = ["tests.realmodel"]
