"""The documentation's measured figures against the JSON files in docs/bench that they cite.

Each check recomputes a figure (a ratio, a range, a difference of means, a share of a gap) from
the JSON and looks for the text that states it, so a rerun benchmark whose JSON changes, or a
figure computed from a table's rounded values, fails here and names the file and the text. The
local links of README.md and docs/*.md are checked too (files and heading anchors).
"""

import json
import pathlib
import re
import statistics

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "docs" / "bench"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def bench(name):
    return json.loads((BENCH / name).read_text(encoding="utf-8"))


def assert_states(doc, text):
    """Fails unless `doc` (a path relative to the root) contains `text`, whitespace aside."""
    flat = " ".join((ROOT / doc).read_text(encoding="utf-8").split())
    assert " ".join(text.split()) in flat, f"{doc} does not state {text!r} (recomputed from docs/bench)"


def mean_of_seeds(arms, arm):
    return statistics.mean(arms[seed][arm] for seed in ("0", "1"))


def test_training_step_ratio_ranges():
    by_config = {r["config"]: r["timing"] for r in bench("train_step_cpu.json")["results"]}
    ssma = by_config["ssma"]["ratio_per_round"]
    stage3 = f"({min(ssma):.2f}–{max(ssma):.2f})"
    assert_states("docs/benchmarks.md", f"{by_config['ssma']['ratio_median']:.3f}× {stage3}")
    assert_states("README.md", f"{by_config['ssma']['ratio_median']:.2f}× {stage3}")
    ten = bench("train_step_ssma_10rounds_cpu.json")["results"][0]["timing"]["ratio_per_round"]
    assert_states("docs/benchmarks.md", f"10 rounds **0.977×** ({min(ten):.2f}–{max(ten):.2f})")


def test_h200_against_the_titan_x_and_batch_8():
    data = bench("jax_h200.json")
    fractions, gains = [], []
    for result in data["results"]:
        paper_ms = data["paper_titanx_ms"][result["model"]]
        for mode, figures in result["modes"].items():
            latency = figures["latency"]["median"]
            if mode in ("jax", "jax_bfloat16"):
                fractions.append(latency * 1e3 / paper_ms)
            gains.append(figures["throughput"]["images_per_s"] * latency)
    assert_states("docs/benchmarks.md", f"take {min(fractions):.2f}–{max(fractions):.2f}×")
    batch8 = f"gives only {min(gains):.1f}–{max(gains):.1f}× the images per second"
    assert_states("docs/benchmarks.md", batch8)


def test_profile_totals_count_ops_not_profiler_events():
    # The profiler's region events (no time) and the function runtime's (which contain the ops).
    not_ops = {"Run", "Process", "Record", "StartRegion", "StopRegion"}
    sides = [bench("profile_train_step_before.json")["sides"][side] for side in ("port", "tf1")]
    counts = [sum(n for op, n in side["count"].items() if op not in not_ops) for side in sides]
    times = [sum(ms for op, ms in side["ms"].items() if op not in not_ops) for side in sides]
    row = " | ".join(f"{v:,.0f}".replace(",", " ") for v in (*times, *counts))
    assert_states("docs/benchmarks.md", f"| all op types | {row} |")


def test_semi_supervised_differences_from_the_json_values():
    runs = bench("semi_supervised_evidence_synthetic.json")
    late, early = runs["released_augmentation_150_steps"], runs["released_teacher_150_steps"]

    def class_minus_depth(run, model):
        return statistics.mean(run[model]["classmix"].values()) - statistics.mean(run[model]["depthmix"].values())

    seed1 = late["adapnet_pp_rgb"]["depthmix"]["1"] - late["adapnet_pp_rgb"]["classmix"]["1"]
    adapnet = class_minus_depth(late, "adapnet_pp_rgb")
    assert_states("docs/semi_supervised.md", f"−{adapnet:.1f} on the AdapNet++ mean (it wins seed 1 by {seed1:.1f}")
    ssma = class_minus_depth(early, "ssma")
    assert_states("docs/semi_supervised.md", f"and −{ssma:.1f} on SSMA (lower in both seeds)")
    moved = max(abs(statistics.mean(late[m][a].values()) - statistics.mean(early[m][a].values()))
                for m in ("adapnet_pp_rgb", "ssma") for a in ("classmix", "depthmix"))
    assert_states("docs/semi_supervised.md", f"moved by up to {moved:.1f} points")


def test_semi_supervised_600_steps_table_and_summary():
    run = bench("semi_supervised_evidence_synthetic.json")["released_augmentation_600_steps"]
    means = {m: {a: statistics.mean(run[m][a].values()) for a in ("supervised", "classmix", "depthmix")}
             for m in ("adapnet_pp_rgb", "ssma")}
    a, s = means["adapnet_pp_rgb"], means["ssma"]
    assert_states("README.md", f"(supervised {a['supervised']:.1f} < ClassMix {a['classmix']:.1f} < "
                               f"DepthMix {a['depthmix']:.1f})")
    assert_states("README.md", f"({s['supervised']:.1f}, {s['classmix']:.1f}, {s['depthmix']:.1f}: ClassMix")
    assert_states("docs/semi_supervised.md", f"+{s['depthmix'] - s['supervised']:.1f} on the mean")
    assert_states("docs/semi_supervised.md", f"ClassMix on the mean (+{s['depthmix'] - s['classmix']:.1f})")
    for seed in ("0", "1"):
        assert run["ssma"]["classmix"][seed] < run["ssma"]["supervised"][seed]  # "in both seeds"


def test_adaptation_share_of_the_gap():
    arms = bench("adaptation_demo_adapnet.json")["adapnet_pp"]
    source, target = mean_of_seeds(arms, "source_only"), mean_of_seeds(arms, "target_labels")
    sac, abn = (round(100 * (mean_of_seeds(arms, a) - source) / (target - source)) for a in ("sac", "abn"))
    assert_states("docs/adaptation.md", f"it closes {sac} % of the gap between source only and target labels, "
                                        f"ABN {abn} %")


def _anchors(path):
    anchors, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_local_links_and_cited_bench_files_exist(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    for url in re.findall(r"\]\(([^)\s]+)\)", text):
        if url.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = url.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        assert target.exists(), f"{doc.name}: link to a missing file: {url}"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{doc.name}: link to a missing heading: {url}"
    for cited in re.findall(r"docs/bench/([\w.-]+\.json)", doc.read_text(encoding="utf-8")):
        assert (BENCH / cited).exists(), f"{doc.name} cites docs/bench/{cited}, which does not exist"
