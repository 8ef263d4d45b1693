"""Helpers the specification imports as `utils_testing.*`, backed by the library's own classes."""
