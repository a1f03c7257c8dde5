"""The decoders facexplain ships, by name: the extension point for a new decoder (register a builder)."""
from __future__ import annotations

import functools
from collections.abc import Callable

from explainer.core.registry import Registry
from explainer.generation.base import Decoder


def _dcgan_digiface() -> Decoder:
    from explainer.generation.dcgan import DCGANDecoder  # here: it reads its weights file

    return DCGANDecoder()


DECODERS: Registry[Callable[[], Decoder]] = Registry("decoder", {"dcgan-digiface": _dcgan_digiface})


@functools.lru_cache(maxsize=None)
def load_decoder(name: str) -> Decoder:
    """The named decoder, built once per process; UnknownName lists the registered ones."""
    return DECODERS[name]()
