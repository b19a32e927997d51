// Integration tests: init (being written).
