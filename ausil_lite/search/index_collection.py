"""Index a collection of media files in one call: what ``ausil-lite index`` does, for scripts and notebooks too.

The flow: find the media files under the given paths, drop indexed videos whose file changed, extract the
new ones into the feature store (in local worker processes or on a Dask cluster), write the next index
version from everything that extracted, and report each file that failed or decoded only in part. A file
that fails never stops the rest; it is left out of this version and tried again only when asked
(``retry_failed``), because a damaged file stays damaged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.store import DONE, FeatureStore, extract_videos
from ausil_lite.search.collection import discover
from ausil_lite.search.distributed import extract_on_cluster
from ausil_lite.search.index import VIDEOS, current_version, read_manifest, read_videos
from ausil_lite.search.update import UpdateSummary, update_index


@dataclass
class IndexRun:
    """What one indexing run did: the update written, and the files it could not index whole."""

    update: UpdateSummary
    failed: dict[str, str] = field(default_factory=dict)  # media path -> reason
    partial: dict[str, str] = field(default_factory=dict)  # id -> what of the damaged file decoded

    @property
    def exit_code(self) -> int:
        """The command's exit code: 1 when a file failed, 3 when some were indexed only in part, else 0."""
        return 1 if self.failed else 3 if self.partial else 0

    def report(self) -> list[str]:
        """The update's line, then every failed and partly indexed file with its reason."""
        lines = [str(self.update)]
        if self.failed:
            lines.append(f"{len(self.failed)} file(s) could not be indexed:")
            lines += [f"  FAILED {reason}" if path in reason else f"  FAILED {path}: {reason}"
                      for path, reason in self.failed.items()]
        if self.partial:
            lines.append(f"{len(self.partial)} file(s) indexed in part (damaged; only what decoded is searchable):")
            lines += [f"  PARTIAL {note}" for note in self.partial.values()]
        return lines


def index_collection(
    paths: Iterable[str | Path],
    index_dir: Path,
    store: FeatureStore,
    config: ExtractionConfig,
    model_dir: Path | None = None,
    scheduler: str | None = None,
    workers: int = 1,
    retry_failed: bool = False,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> IndexRun:
    """Bring the index in ``index_dir`` up to date with the media files under ``paths``.

    ``config`` says how descriptors are made (it must match the store's); ``model_dir`` gives the whitening
    and reranking network of a new or rebuilt index (None: whitening fitted on the videos, chamfer). Call it
    under :func:`ausil_lite.search.index.run_lock` when other runs may update the same index.
    """
    found = discover(paths)
    indexed: dict[str, str] = {}  # id -> source of the current version
    if current_version(index_dir):
        folder, _ = read_manifest(index_dir, verify="none")
        table = read_videos(folder / VIDEOS)
        indexed = dict(zip(table["id"], table["source"]))
    by_source = {source: vid for vid, source in indexed.items()}
    drop = [by_source[str(f.path)] for f in found.files if by_source.get(str(f.path)) not in (None, f.id)]
    todo = [(f.id, f.path) for f in found.files if f.id not in indexed]
    log(f"{len(found.files)} media files ({found.ignored} other files ignored); {len(found.files) - len(todo)} already "
        f"indexed, {len(todo)} to extract" + (f" on {scheduler}" if scheduler and todo else ""))
    failed: dict[str, str] = {}
    partial: dict[str, str] = {}
    if todo:
        if scheduler:
            summary = extract_on_cluster(todo, store, config, scheduler, retry_failed)
        else:
            summary = extract_videos(todo, store, config, workers=workers, retry_failed=retry_failed)
        log(str(summary).splitlines()[0])
        partial = summary.partial
        status = store.index.set_index("id")[["status", "error"]]
        failed = {vid: status.at[vid, "error"] for vid, _ in todo if status.at[vid, "status"] not in DONE}
    ready = [f for f in found.files if f.id in indexed or f.id not in failed]
    update = update_index(index_dir, ready, store, drop=drop, model_dir=model_dir, rebuild=rebuild)
    paths_of = {vid: str(path) for vid, path in todo}
    return IndexRun(update, {paths_of[vid]: reason for vid, reason in failed.items()}, partial)
