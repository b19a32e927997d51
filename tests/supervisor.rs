// Integration tests: supervisor (being written).
