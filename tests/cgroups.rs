// Integration tests: cgroups (being written).
