"""The app's limits in one place: how many jobs run and wait, how much CPU and how many pixels one may use.

Every field can be set from the environment (the README lists the variables), so a deployment tunes the
app without editing code. Imports nothing heavy: app.py reads it before Gradio is imported.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from explainer.faces.image_io import MAX_FILE_BYTES, MAX_PIXELS


@dataclass(frozen=True)
class AppSettings:
    concurrency: int = 1             # explanations / comparisons run at once: the CPU is the bottleneck
    queue_size: int = 32             # requests waiting behind those; more are told how long to wait and to retry
    cpu_seconds: float = 300.0       # CPU time one explanation may use before it is stopped with a plain error
    max_pixels: int = MAX_PIXELS     # width x height of an uploaded photo (decompression bombs stop here)
    max_file_bytes: int = MAX_FILE_BYTES  # size of one upload; Gradio refuses bigger ones (HTTP 413)
    delete_cache: tuple[int, int] = (300, 600)  # Gradio deletes its file copies every 300 s, older than 600 s
    state_dir: Path = Path(tempfile.gettempdir()) / "facexplain-app"  # one folder per running app, below this

    # Environment variable for each field (the README's table).
    ENV = {"concurrency": "FACEXPLAIN_CONCURRENCY", "queue_size": "FACEXPLAIN_QUEUE_SIZE",
           "cpu_seconds": "FACEXPLAIN_CPU_SECONDS", "max_pixels": "FACEXPLAIN_MAX_PIXELS",
           "state_dir": "FACEXPLAIN_APP_STATE"}

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue_size < 1 or self.cpu_seconds <= 0:
            raise ValueError(f"concurrency and queue_size must be at least 1, cpu_seconds positive: {self}")
        # The loader refuses anything above the library's own bound whatever this says.
        if not 0 < self.max_pixels <= MAX_PIXELS:
            raise ValueError(f"max_pixels must be in 1..{MAX_PIXELS}, not {self.max_pixels}")

    @classmethod
    def from_env(cls, environ: dict | None = None) -> AppSettings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            name = cls.ENV.get(f.name)
            if name and environ.get(name):
                kind = {"int": int, "float": float, "Path": Path}[f.type]
                values[f.name] = kind(environ[name])
        return cls(**values)

    @property
    def upload_max_age_s(self) -> int:
        """Gradio deletes any upload older than this, needed or not: a request may not wait longer."""
        return self.delete_cache[1]
