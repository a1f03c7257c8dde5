"""facexplain: explain face-recognition decisions by attribute recovery."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `explainer.load_pack` without importing torch for every `import explainer` (the CLI's start-up).
    if name == "load_pack":
        from explainer.packs.catalogue import load_pack

        return load_pack
    raise AttributeError(f"module 'explainer' has no attribute {name!r}")
