"""Flows: one module per use case; each flow only composes tasks."""
