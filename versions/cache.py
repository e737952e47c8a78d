"""The towers of the versions a stream worker writes vectors for, loaded once each."""

from __future__ import annotations

import logging

from learnrec.versions.registry import ModelRegistry, VersionError
from learnrec.versions.towers import LoadedVersion

log = logging.getLogger(__name__)


class VersionCache:
    """Loaded towers of the versions in use, loaded on first use, dropped when no longer used."""

    def __init__(self, registry: ModelRegistry, encoder_id: str, content_dim: int) -> None:
        self.registry = registry
        self.encoder_id = encoder_id
        self.content_dim = content_dim
        self._loaded: dict[str, LoadedVersion] = {}

    def get(self, version: str) -> LoadedVersion:
        """The towers of ``version``; raises :class:`VersionError` when it was built for another
        content encoder (its vectors would be meaningless)."""
        if version not in self._loaded:
            loaded = self.registry.load_version(version)
            if (loaded.info.encoder, loaded.info.content_dim) != (self.encoder_id, self.content_dim):
                raise VersionError(
                    f"model version {version} expects encoder {loaded.info.encoder} "
                    f"({loaded.info.content_dim}-d); this worker runs {self.encoder_id} ({self.content_dim}-d)"
                )
            self._loaded[version] = loaded
            log.info("loaded model version %s", version)
        return self._loaded[version]

    def retain(self, versions: set[str]) -> None:
        """Forget every loaded version not in ``versions``."""
        for version in set(self._loaded) - versions:
            del self._loaded[version]
