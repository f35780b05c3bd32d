"""Configuration, records, errors, logging: what every layer uses; no framework."""
