"""Batch prediction with an exported run."""
