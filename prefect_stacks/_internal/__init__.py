"""Private helpers shared by blocks, flows and the CLI (DESIGN.md: ``_internal/``)."""
