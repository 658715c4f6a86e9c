"""Configuration: the TOML file as checked, frozen data; the starter text."""
