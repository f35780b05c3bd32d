"""The user's `tune` module (nighttune's flow files are named so too)."""

OWNER = "user"
