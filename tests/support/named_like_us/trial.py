"""The user's `trial` module (nighttune's flow files are named so too)."""

OWNER = "user"
