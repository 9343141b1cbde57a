"""Test support: real servers, processes and helpers shared by the suite."""
