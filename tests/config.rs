// Integration tests: config (being written).
