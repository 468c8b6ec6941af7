"""Readers of published datasets and the SynthRad generator, all producing the unified schema."""
