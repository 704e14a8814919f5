"""The test suite; its sub-packages mirror the project's packages (docs/design.md#conventions)."""
