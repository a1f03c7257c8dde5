"""The floor every part stands on: errors, named registries, geometry, the one-thread rule, tables, safe
checkpoint reading. Nothing here imports any other part of explainer."""
