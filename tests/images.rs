// Integration tests: images (being written).
