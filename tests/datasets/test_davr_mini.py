"""DAVR-mini: deterministic plans and manifests, train/evaluation disjointness, and a real small build."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from ausil_lite.datasets import davr_mini as D
from ausil_lite.datasets import transforms as T
from ausil_lite.datasets.media import write_media
from ausil_lite.datasets.sources import SourceFile, SourcePoolError, Track
from ausil_lite.descriptors.audio import load_audio

MANIFESTS = ("annotation.json", "dataset_ids.txt", "queries.txt", "database.txt", "items.csv", "train.txt", "train.csv")


def fake_tracks(per_package: int = 6, packages: int = 3, seconds: float = 200.0) -> list[Track]:
    """Tracks that exist only as metadata: planning never reads audio."""
    tracks = []
    for p in range(packages):
        for i in range(per_package):
            row = SourceFile(f"pkg{p}:t{i}", f"pkg{p}", "1", "CC0", "music", f"/nowhere/{p}/{i}.ogg", "0" * 64,
                             seconds + 10 * i, 44100, 2)
            tracks.append(Track(row.track, row.package, row.kind, row.licence, (row,)))
    return tracks


SMALL = D.DavrMiniConfig(
    n_queries=6, n_database=60, query_s=(20.0, 30.0), distractor_s=(10.0, 20.0), positives_per_query=6,
    hard_negatives_per_query=2,
)


def test_same_seed_same_plan_and_another_seed_another():
    a = D.plan_benchmark(fake_tracks(), SMALL, seed=3)
    b = D.plan_benchmark(fake_tracks(), SMALL, seed=3)
    c = D.plan_benchmark(fake_tracks(), SMALL, seed=4)
    assert a.items == b.items
    assert D.item_table_rows(a) == D.item_table_rows(b) != D.item_table_rows(c)


def test_counts_roles_and_labels():
    plan = D.plan_benchmark(fake_tracks(), SMALL, seed=0)
    roles = Counter(i.role for i in plan.items)
    assert roles == {"query": 6, "positive": 36, "hard_negative": 12, "distractor": 12}
    assert len({i.id for i in plan.items}) == len(plan.items)
    assert all(len(i.id) == D.ID_LENGTH for i in plan.items)
    families = Counter(i.transform["family"] for i in plan.items if i.role == "positive")
    assert set(families) == set(T.FAMILIES) and max(families.values()) - min(families.values()) <= 1
    assert {i.label for i in plan.items if i.role == "hard_negative"} <= {"ST", "SP"}


def test_training_tracks_never_feed_the_benchmark():
    tracks = fake_tracks()
    for seed in range(5):
        plan = D.plan_benchmark(tracks, SMALL, seed)
        train = {t.id for t in plan.train}
        used = {i.source.track for i in plan.items} | {w.track for i in plan.items for w in i.others}
        assert train and not train & used
        assert train | {t.id for t in plan.evaluation} == {t.id for t in tracks}
        per_package = Counter(t.package for t in plan.train)
        assert all(n == round(0.25 * 6) for n in per_package.values())


def test_split_does_not_depend_on_the_profile():
    tracks = fake_tracks()
    a = D.plan_benchmark(tracks, SMALL, seed=1).train
    b = D.plan_benchmark(tracks, D.replace_config(SMALL, n_database=80), seed=1).train
    assert [t.id for t in a] == [t.id for t in b]


def test_nothing_else_overlaps_a_query_window():
    plan = D.plan_benchmark(fake_tracks(), SMALL, seed=2)
    queries = [i for i in plan.items if i.role == "query"]
    windows = [i.source for i in plan.items if i.role in ("hard_negative", "distractor")]
    windows += [w for i in plan.items for w in i.others]
    for q in queries:
        a0, a1 = q.source.start_s, q.source.start_s + q.source.duration_s
        for w in windows:
            if w.track == q.source.track:
                assert w.start_s + w.duration_s <= a0 - D.MARGIN_S + 1e-3 or w.start_s >= a1 + D.MARGIN_S - 1e-3
    for i in plan.items:
        if i.role == "positive":
            assert i.source == plan.items[[x.id for x in plan.items].index(i.query)].source
            assert all(w.track != i.source.track for w in i.others)


def test_speed_items_cover_the_factor_grid():
    config = D.replace_config(SMALL, n_queries=12, n_database=200, families=("speed", "tempo"))
    plan = D.plan_benchmark(fake_tracks(per_package=10), config, seed=0)
    speeds = Counter(i.transform["factor"] for i in plan.items if i.role == "positive" and i.transform["family"] == "speed")
    assert set(speeds) == set(T.SPEED_FACTORS)


def test_too_small_a_pool_is_a_clear_error():
    with pytest.raises(SourcePoolError, match="query windows"):
        D.plan_benchmark(fake_tracks(per_package=2, packages=1, seconds=25.0), SMALL, seed=0)


def test_config_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="smaller than"):
        D.DavrMiniConfig(n_queries=10, n_database=50)
    with pytest.raises(ValueError, match="unknown transformation"):
        D.DavrMiniConfig(families=("speed", "warp"))


def test_a_severe_plan_draws_every_positive_from_the_hard_end_and_keeps_negatives_plain():
    config = D.replace_config(SMALL, families=T.SEVERE_FAMILIES, severe=True)
    plan = D.plan_benchmark(fake_tracks(), config, seed=0)
    positives = [i.transform for i in plan.items if i.role == "positive"]
    assert Counter(p["family"] for p in positives) == dict.fromkeys(T.SEVERE_FAMILIES, 6)
    assert all(p["keep"] <= 0.45 for p in positives if p["family"] == "crop")
    assert all(p["ratio_db"] <= 3.0 for p in positives if p["family"] == "mix")
    negatives = [i.transform for i in plan.items if i.role != "positive" and i.transform]
    assert {p["family"] for p in negatives} <= set(T.SEVERE_FAMILIES)
    assert any(p["keep"] > 0.45 for p in negatives if p["family"] == "crop")  # negatives keep the full ranges
    with pytest.raises(ValueError, match="severe range"):
        D.replace_config(SMALL, severe=True)
    mixes = D.plan_benchmark(fake_tracks(), D.replace_config(SMALL, families=("mix",), severe=True), seed=0)
    ratios = [i.transform["ratio_db"] for i in mixes.items if i.role == "positive"]
    assert len(ratios) == 36 and max(ratios) <= 3.0 and len({i.others for i in mixes.items if i.role == "positive"}) > 6


def test_manifests_are_byte_identical_for_a_seed(tmp_path):
    tracks = fake_tracks()
    rows = [f for t in tracks for f in t.files]
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        (tmp_path / name).mkdir()
        D.write_manifests(D.plan_benchmark(tracks, SMALL, seed), tmp_path / name, rows)
    for manifest in MANIFESTS:
        assert (tmp_path / "a" / manifest).read_bytes() == (tmp_path / "b" / manifest).read_bytes()
    assert (tmp_path / "a" / "items.csv").read_bytes() != (tmp_path / "c" / "items.csv").read_bytes()


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A real build from generated recordings: two 'packages' of four 40-s tracks."""
    base = tmp_path_factory.mktemp("davr")
    rng = np.random.default_rng(0)
    for package in ("alpha", "beta"):
        for i in range(4):
            t = np.arange(40 * 16_000) / 16_000
            f0 = rng.uniform(200, 800)
            wave = np.sin(2 * np.pi * f0 * t * (1 + 0.1 * np.sin(t))) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
            wave += 0.05 * rng.standard_normal(t.size)
            write_media(base / "src" / package / f"track{i}.flac", (0.4 * wave).astype(np.float32), 16_000)
    config = D.DavrMiniConfig(
        n_queries=3, n_database=24, query_s=(10.0, 12.0), distractor_s=(8.0, 10.0), positives_per_query=5,
        hard_negatives_per_query=2, train_fraction=0.25,
    )
    kwargs = dict(source_dirs=[base / "src"], include_default=False, config=config, workers=1)
    summary = D.build_davr_mini("test", 11, root=base / "one", **kwargs)
    return base, config, kwargs, summary


@pytest.mark.slow
def test_small_build_is_complete_and_loads_as_a_benchmark(small_build):
    base, config, _, summary = small_build
    assert summary.rendered == 3 + 24
    bench = D.load_davr_mini(base / "one")
    assert len(bench.queries()) == 3 and len(bench.database()) == 24
    assert bench.missing() == []
    for q in bench.queries():
        assert len(bench.relevant(q)) == 5
        assert bench.relevant(q, ("ST", "SP")) and not bench.relevant(q) & bench.relevant(q, ("ST", "SP"))
    table = bench.table.set_index("id")
    assert set(table.index) == set(bench.queries()) | set(bench.database())
    speed_rows = table[table["family"] == "speed"]
    assert speed_rows["speed"].between(0.7, 1.4).all()
    train = (base / "one" / "train.txt").read_text().split("\n")
    assert len([line for line in train if line]) == 2  # one track of each four-track package


@pytest.mark.slow
def test_every_item_decodes_through_the_feature_pipeline(small_build):
    from ausil_lite.descriptors.spectrogram import log_mel_spectrogram, segment_spectrogram

    import torch

    base, _, _, _ = small_build
    bench = D.load_davr_mini(base / "one")
    table = bench.table.set_index("id")
    for video_id, path in bench.videos():
        samples = load_audio(path)
        planned = float(table.loc[video_id, "duration_s"])
        assert samples.size / 44_100 == pytest.approx(planned, abs=0.25), video_id
        segments = segment_spectrogram(log_mel_spectrogram(torch.from_numpy(samples)))
        assert segments.shape[1:] == (1, 174, 128) and segments.shape[0] >= planned - 2


@pytest.mark.slow
def test_rebuild_is_identical_resumes_and_refuses_another_seed(small_build):
    base, _, kwargs, _ = small_build
    again = D.build_davr_mini("test", 11, root=base / "two", **kwargs)
    for manifest in MANIFESTS + ("sources.csv",):
        assert (base / "one" / manifest).read_bytes() == (base / "two" / manifest).read_bytes(), manifest
    victim = sorted((base / "two" / "media").iterdir())[0]
    victim.unlink()
    resumed = D.build_davr_mini("test", 11, root=base / "two", **kwargs)
    assert resumed.rendered == 1 and victim.is_file() and again.rendered == 27
    with pytest.raises(SourcePoolError, match="another seed"):
        D.build_davr_mini("test", 12, root=base / "two", **kwargs)
    build = json.loads((base / "two" / "build.json").read_text())
    assert build["seed"] == 11 and build["config"]["n_queries"] == 3
    # the same request over a build an older planner made: replanned and rendered anew, not refused
    items = base / "two" / "items.csv"
    items.write_text(items.read_text().replace(",mp4,", ",webm,", 1))
    replanned = D.build_davr_mini("test", 11, root=base / "two", **kwargs)
    assert replanned.rendered == 27 and items.read_bytes() == (base / "one" / "items.csv").read_bytes()


def test_loading_an_unbuilt_folder_says_how_to_build(tmp_path):
    with pytest.raises(SourcePoolError, match="build-benchmark"):
        D.load_davr_mini(tmp_path)


def test_training_pool_draws_only_training_tracks(small_build):
    from ausil_lite.datasets.training import TrainingPool

    base, _, _, _ = small_build
    pool = TrainingPool.from_benchmark(base / "one")
    train_ids = {line.split()[0] for line in (base / "one" / "train.txt").read_text().splitlines()}
    assert set(pool.ids) == train_ids
    evaluation = {t for t in D.load_davr_mini(base / "one").table["track"]}
    assert not {i.replace("_", " ") for i in pool.ids} & evaluation and not set(pool.ids) & evaluation
    rng = np.random.default_rng(0)
    for _ in range(5):
        anchor, positive, params = pool.draw_pair(rng, 5.0)
        assert anchor.track in train_ids and anchor.samples.size == 5 * 44_100
        assert positive.size > 0 and params["family"] in T.FAMILIES
        negative = pool.draw_clip(rng, 5.0, exclude=anchor.track)
        assert negative.track != anchor.track


def run_cli(argv: list[str]) -> int:
    import argparse

    from ausil_lite.commands import benchmark

    parser = argparse.ArgumentParser()
    benchmark.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_refuses_an_empty_pool(capsys):
    assert run_cli(["build-benchmark", "--no-default-sources"]) == 2
    assert "--source-dir" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_builds_the_tiny_profile_from_a_source_folder(small_build, capsys):
    base, _, _, _ = small_build
    out = base / "cli"
    argv = ["build-benchmark", "--profile", "tiny", "--no-default-sources", "--source-dir", str(base / "src"),
            "--output", str(out), "--workers", "2"]
    assert run_cli(argv) == 0
    report = json.loads(capsys.readouterr().out)
    tiny = D.PROFILES["tiny"]
    assert report["queries"] == tiny.n_queries and report["database"] == tiny.n_database and report["missing"] == 0
    assert sum(report["families"].values()) == tiny.n_queries * tiny.positives_per_query


@pytest.mark.parametrize("profile", ["tiny", "ci", "full"])
def test_profiles_plan_from_the_committed_pool(profile):
    """Sizes the issue asks for, planned from data_manifests/ alone (no audio is read)."""
    from ausil_lite.datasets.sources import read_manifest, tracks_from_rows

    config = D.PROFILES[profile]
    plan = D.plan_benchmark(tracks_from_rows(read_manifest()), config, seed=0)
    roles = Counter(i.role for i in plan.items)
    assert roles["query"] == config.n_queries and len(plan.items) - roles["query"] == config.n_database
    hours = sum(i.duration_s for i in plan.items) / 3600
    if profile == "ci":
        assert roles["query"] >= 15 and config.n_database == 300 and hours < 3.0
        assert all(20.0 <= i.source.duration_s <= 30.0 for i in plan.items if i.role == "query")
    if profile == "full":
        assert roles["query"] >= 100 and config.n_database >= 3000
        assert all(20.0 <= i.source.duration_s <= 90.0 for i in plan.items if i.role == "query")
    assert len({i.source.track for i in plan.items if i.role == "query"} & {t.id for t in plan.train}) == 0


def test_loading_checks_train_and_evaluation_stay_apart(small_build, tmp_path):
    import shutil

    base, _, _, _ = small_build
    copy = shutil.copytree(base / "one", tmp_path / "copy")
    track = D.load_davr_mini(copy).table["track"].iloc[0]
    with open(copy / "train.txt", "a") as fh:
        fh.write(f"{track} somewhere.wav\n")
    with pytest.raises(SourcePoolError, match="training tracks also feed"):
        D.load_davr_mini(copy)


@pytest.mark.slow
def test_original_evaluate_command_scores_the_build(small_build, tmp_path, capsys):
    """dataset_ids.txt lists the queries too (FIVR's shape), so the original protocol keeps every query."""
    import json

    from ausil_lite.cli import main

    base = small_build[0] / "one"
    bench = D.load_davr_mini(base)
    ids = (base / "dataset_ids.txt").read_text().split()
    assert set(ids) == set(bench.queries()) | set(bench.database())
    # a perfect ranking: each query's positives first
    sims = {q: {v: (1.0 if v in bench.relevant(q) else 0.0) for v in bench.database()} for q in bench.queries()}
    (tmp_path / "S.json").write_text(json.dumps(sims))
    code = main(["evaluate", "--similarities", str(tmp_path / "S.json"), "--annotations", str(base / "annotation.json"),
                 "--dataset-ids", str(base / "dataset_ids.txt"), "--relevant-labels", "DA"])
    assert code == 0
    assert "1.0000" in capsys.readouterr().out
