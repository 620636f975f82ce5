"""The version, in a module of its own so that any module can read it without importing the
package (whose __init__ pulls in training and weights)."""

__version__ = "0.1.0"  # the same as pyproject.toml's
