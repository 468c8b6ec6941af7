"""Stage recipes: plain-Python compositions of model, engine and data that the Kedro nodes call.

A recipe takes manifests (pandas frames, paths) and typed configs and returns small results;
notebooks and scripts can call the same functions without a Kedro session.
"""
