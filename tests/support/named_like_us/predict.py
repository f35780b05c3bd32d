"""The user's `predict` module (nighttune's flow files are named so too)."""

OWNER = "user"
