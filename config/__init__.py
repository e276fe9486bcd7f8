"""Shipped default configuration (TOML). Installed as the package meterlake.defaults."""
