"""The documentation's measured figures against the JSON files in docs/bench that they cite.

Each check recomputes a figure (a ratio, a range, a difference of means, a share of a gap) from
the JSON and looks for the text that states it, so a rerun benchmark whose JSON changes, or a
figure computed from a table's rounded values, fails here and names the file and the text. The
local links of README.md and docs/*.md are checked too (files and heading anchors).
"""

import json
import os
import pathlib
import re
import statistics

import pytest
import yaml

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


def test_inference_table_and_ranges_on_the_xeon_with_amx():
    """docs/benchmarks.md's inference table, its GFLOP/s and growth ranges, and the README's rows."""
    data = bench("inference_cpu.json")
    assert data["machine"]["cores"] == 2 and data["machine"]["bf16_hardware"]
    flops = {r["model"]: r["flops"]["total"] for r in data["results"] if r.get("kind") == "flops"}
    rates, growth = {"compiled": [], "eager": [], "bfloat16": []}, {"float32": [], "bfloat16": []}
    for result in (r for r in data["results"] if "modes" in r):
        for mode, values in result["modes"].items():
            latency = values["latency"]
            # The ratio is the median of the per-round ratios, recomputed from the rounds kept.
            tf1 = result["modes"]["tf1"]["latency"]["rounds"]
            ratio = statistics.median(a / b for a, b in zip(tf1, latency["rounds"]))
            assert abs(ratio - latency["speedup_vs_tf1"]) < 1e-9
            median = f"{latency['median']:.3f}"
            shown = f"**{median}** | {latency['p90']:.3f} | **{ratio:.2f}×**" if mode == "bfloat16" \
                else f"{median} | {latency['p90']:.3f} | {ratio:.2f}×"
            assert_states("docs/benchmarks.md", f"| {shown} | {values['throughput']['images_per_s']:.2f} |")
            readme = shown.replace(f" | {latency['p90']:.3f}", "")
            if mode in ("tf1", "default", "bfloat16", "saved_model"):
                assert_states("README.md", f"| {readme} | {values['throughput']['images_per_s']:.2f} |")
            rate = flops[result["model"]] / latency["median"] / 1e9
            rates["eager" if mode == "eager" else "bfloat16" if mode == "bfloat16" else "compiled"].append(rate)
            if "small" in values:
                side = "bfloat16" if mode == "bfloat16" else "float32"
                growth[side].append((latency["median"] / values["small"]["median"],
                                     values["large"]["median"] / latency["median"]))

    def span(values, digits=0):
        return f"{min(values):.{digits}f}–{max(values):.{digits}f}"

    assert_states("docs/benchmarks.md", f"run them at {span(rates['compiled'])} GFLOP/s (the eager call at "
                                        f"{span(rates['eager'])}); bfloat16 at {span(rates['bfloat16'])}.")
    assert_states("docs/benchmarks.md", f"costs ×{span([g[0] for g in growth['float32']], 1)}, and ×4 again to "
                                        f"768×1536 ×{span([g[1] for g in growth['float32']], 1)}")
    assert_states("docs/benchmarks.md", f"(×{span([g[0] for g in growth['bfloat16']], 1)})")
    assert_states("docs/benchmarks.md", f"as fast (×{span([g[1] for g in growth['bfloat16']], 1)})")


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


def test_depth_guided_selection_at_600_steps():
    run = bench("semi_supervised_evidence_synthetic.json")["released_augmentation_600_steps"]["adapnet_pp_rgb"]
    depth, random = run["depth_12"], run["supervised"]
    depth_mean, random_mean = statistics.mean(depth.values()), statistics.mean(random.values())
    assert_states("docs/semi_supervised.md", f"{depth['0']:.1f} and {depth['1']:.1f} mIoU (mean "
                  f"{depth_mean:.1f}) against {random['0']:.1f} and {random['1']:.1f} "
                  f"(mean {random_mean:.1f})")
    assert_states("docs/semi_supervised.md", f"It loses {random['0'] - depth['0']:.1f} points in seed 0 and gains "
                  f"{depth['1'] - random['1']:.1f} in seed 1")
    assert_states("README.md", f"and {depth_mean:.1f} against {random_mean:.1f})")  # the per-cell run


def test_depth_guided_selection_with_the_released_standardisation():
    """The rerun of 2026-12-04 (per-channel standardisation, helper 117), in the docs and README."""
    evidence = bench("semi_supervised_evidence_synthetic.json")
    means = {}
    for steps in (150, 600):
        run = evidence[f"depth_selection_per_channel_{steps}_steps"]["adapnet_pp_rgb"]
        depth, random = run["depth_12"], run["supervised"]
        means[steps] = statistics.mean(depth.values()), statistics.mean(random.values())
        assert_states("docs/semi_supervised.md", f"{depth['0']:.1f} and {depth['1']:.1f} (mean {means[steps][0]:.1f}) "
                      f"against {random['0']:.1f} and {random['1']:.1f} (mean {means[steps][1]:.1f})")
        assert all(depth[s] < random[s] for s in ("0", "1"))  # "worse in every seed"
    assert_states("README.md", f"at 150 steps ({means[150][0]:.1f} against {means[150][1]:.1f}, worse in both "
                  f"seeds) and at 600 ({means[600][0]:.1f} against {means[600][1]:.1f})")


def test_real_time_600_steps_gap():
    adapnet = bench("fusion_table_adapnet_recalibrated_600_synthetic.json")["seeds"]
    mobilenet = bench("fusion_table_mobilenet128_recalibrated_600_synthetic.json")
    big = statistics.mean(adapnet[s]["ssma"]["mIoU"] for s in ("0", "1"))
    small = statistics.mean(mobilenet["seeds"][s]["ssma"]["mIoU"] for s in ("0", "1"))
    int8 = statistics.mean(mobilenet["ssma_exported"]["openvino_int8"].values())
    assert_states("docs/fusion.md", f"SSMA is\n  {big - small:.1f} below the AdapNet++ SSMA in float32 and {big - int8:.1f} through int8")
    assert_states("README.md", f"ends {big - int8:.1f} below through int8 ({int8:.1f} against {big:.1f})")
    assert big - int8 > 2.0  # "not met"


def test_deployment_ratios_on_the_xeon_with_amx():
    """docs/deploy.md's Intel Xeon table and ranges, and the README's summary, from both runs."""
    runs = [bench("deploy_cpu_xeon_amx.json"), bench("deploy_cpu_xeon_amx_run1.json")]
    assert runs[0]["machine"]["amx"] and runs[0]["machine"]["cores"] == 2
    ratios = {}
    for index, run in enumerate(runs):
        for result in run["results"]:
            if result.get("kind") == "tf":
                for mode, values in result["modes"].items():
                    ratios[index, result["model"], mode] = values["latency"]["ratio_to_default"]
                    if index == 0 and mode in ("default", "openvino", "openvino_int8"):
                        assert_states("docs/deploy.md", f"{values['latency']['median']:.3f}")

    def cell(model, mode):
        return f"{ratios[0, model, mode]:.2f}× ({ratios[1, model, mode]:.2f}×)"

    assert_states("docs/deploy.md", f"| OpenVINO float32 | 0.607 | **{cell('adapnet_pp', 'openvino')[:5]}**"
                                    f" {cell('adapnet_pp', 'openvino')[6:]}")
    for model in ("adapnet_pp", "ssma"):
        for mode in ("auto", "tflite_int8"):
            assert_states("docs/deploy.md", cell(model, mode))

    def span(modes):
        values = [ratios[i, m, mode] for i in (0, 1) for m in ("adapnet_pp", "ssma") for mode in modes]
        return f"{min(values):.2f}–{max(values):.2f}×"

    assert max(ratios[i, m, "openvino"] for i in (0, 1) for m in ("adapnet_pp", "ssma")) <= 0.85
    for doc in ("README.md", "docs/deploy.md"):
        assert_states(doc, f"int8 {span(['openvino_int8'])}, bfloat16 {span(['auto'])}")
    assert_states("README.md", f"OpenVINO float32 runs at {span(['openvino'])} the TensorFlow")


def test_training_step_on_the_xeon_with_amx_in_float32_and_bfloat16():
    """docs/benchmarks.md's AMX table: step times, ratios and their ranges, from both JSON files."""
    for name, precision in (("train_step_xeon_amx.json", "float32"),
                            ("train_step_bf16_xeon_amx.json", "`mixed_bfloat16`")):
        run = bench(name)
        assert run["machine"]["amx"]
        for result in run["results"]:
            timing = result["timing"]
            assert timing["mixed_precision"] == (None if precision == "float32" else "mixed_bfloat16")
            title = {"adapnet_pp": "AdapNet++", "ssma": "SSMA stage 3"}[result["config"]]
            rounds = timing["ratio_per_round"]
            ratio = f"{timing['ratio_median']:.3f}×"
            row = (f"| {title}, {precision} | {timing['step']['port']['median']:.2f} | "
                   f"{timing['step']['tf1']['median']:.2f} | "
                   f"{ratio if precision == 'float32' else '**' + ratio + '**'} "
                   f"({min(rounds):.2f}–{max(rounds):.2f}) |")
            assert_states("docs/benchmarks.md", row)


def test_mixed_bfloat16_demo_accuracy_table():
    """docs/benchmarks.md's bfloat16 accuracy table and the README's means, from the JSON."""
    runs = bench("mixed_bfloat16_demo_xeon_amx.json")["runs"]
    means = {}
    for arm, title in (("float32", "float32"), ("mixed_bfloat16", "`mixed_bfloat16`")):
        scores = [runs[arm][seed]["mIoU"] for seed in ("0", "1")]
        means[arm] = statistics.mean(scores)
        seconds = ", ".join(f"{runs[arm][seed]['train_seconds']} s" for seed in ("0", "1"))
        assert_states("docs/benchmarks.md", f"| {title} | {scores[0]:.2f} | {scores[1]:.2f} | "
                      f"{means[arm]:.2f} [{min(scores):.2f}, {max(scores):.2f}] | {seconds} |")
    assert_states("README.md", f"it ended at {means['mixed_bfloat16']:.2f} mIoU against float32's "
                               f"{means['float32']:.2f}, two seeds")


def test_int8_accuracy_on_the_xeon_with_amx():
    """docs/deploy.md's second accuracy table, its largest int8 change and the SSMA ordering."""
    scores = bench("deploy_accuracy_xeon_amx.json")["mIoU"]
    variants = ("tensorflow float32", "tensorflow bfloat16", "openvino float32", "openvino int8", "tflite int8")
    for model, values in scores.items():
        assert_states("docs/deploy.md", f"| {model} | " + " | ".join(f"{values[v]:.2f}" for v in variants) + " |")
    changes = [values[v] - values["tensorflow float32"] for values in scores.values()
               for v in ("openvino int8", "tflite int8")]
    worst = min(changes, key=lambda change: -abs(change))
    assert abs(worst) <= 0.3
    assert_states("docs/deploy.md", f"(the largest change {worst:+.2f})".replace("-", "−"))
    bfloat16 = max(abs(values["tensorflow bfloat16"] - values["tensorflow float32"]) for values in scores.values())
    assert_states("docs/deploy.md", f"bfloat16 is within {bfloat16:.2f}")
    ssma, rgb = scores["SSMA"], scores["AdapNet++ (RGB)"]
    assert_states("docs/benchmarks.md", f"gives mIoU {rgb['tensorflow bfloat16']:.3f} against "
                                        f"{rgb['tensorflow float32']:.3f} in float32 (AdapNet++ RGB) and "
                                        f"{ssma['tensorflow bfloat16']:.3f} against {ssma['tensorflow float32']:.3f}")
    assert_states("README.md", f"the demo's trained SSMA scores {ssma['tensorflow bfloat16']:.2f} mIoU in bfloat16 "
                               f"against {ssma['tensorflow float32']:.2f} in float32")
    best_unimodal = max(scores["AdapNet++ (RGB)"]["tensorflow float32"], scores["AdapNet++ (depth)"]["tensorflow float32"])
    assert min(scores["SSMA"]["openvino int8"], scores["SSMA"]["tflite int8"]) > best_unimodal


def test_adaptation_share_of_the_gap():
    arms = bench("adaptation_demo_adapnet.json")["adapnet_pp"]
    source, target = mean_of_seeds(arms, "source_only"), mean_of_seeds(arms, "target_labels")
    sac, abn = (round(100 * (mean_of_seeds(arms, a) - source) / (target - source)) for a in ("sac", "abn"))
    assert_states("docs/adaptation.md", f"it closes {sac} % of the gap between source only and target labels, "
                                        f"ABN {abn} %")


def test_adaptation_400_steps_table_and_summary():
    run = bench("adaptation_demo_adapnet_400.json")
    arms = run["adapnet_pp"]
    rows = {"source only": "source_only", "ABN at step 200 (SAC's start)": "abn_start",
            "ABN (600 steps)": "abn", "SAC (ABN at 200 + 400 SAC steps)": "sac", "target labels": "target_labels"}
    for title, arm in rows.items():
        low, high = sorted(arms[seed][arm] for seed in ("0", "1"))
        mean = mean_of_seeds(arms, arm)
        assert_states("docs/adaptation.md", f"| {title} | " + (f"**{mean:.1f}**" if arm == "abn" else f"{mean:.1f}")
                      + f" | {low:.1f}–{high:.1f} |")
    moves = [arms[seed]["sac"] - arms[seed]["abn_start"] for seed in ("0", "1")]
    assert_states("docs/adaptation.md", f"SAC moves by {moves[0]:+.1f} (seed 0) and {moves[1]:+.1f}".replace("-", "−"))
    source, target = mean_of_seeds(arms, "source_only"), mean_of_seeds(arms, "target_labels")
    sac, abn = (round(100 * (mean_of_seeds(arms, a) - source) / (target - source)) for a in ("sac", "abn"))
    assert_states("docs/adaptation.md", f"SAC closes {sac} % of the gap between source\n  only and target labels, ABN {abn} %")
    accuracy = [run["sac_pseudo_labels"][seed][k] for seed in ("0", "1") for k in ("accuracy_min", "accuracy_max")]
    assert_states("docs/adaptation.md", f"between {min(accuracy):.2f} and {max(accuracy):.2f} in both seeds")
    assert_states("README.md", f"SAC falls further behind: {mean_of_seeds(arms, 'sac'):.1f}")


def test_adaptation_400_steps_ssma_table_and_summary():
    run = bench("adaptation_demo_ssma_400.json")
    arms = run["ssma"]
    rows = {"source only": "source_only", "ABN at step 200 (SAC's start)": "abn_start",
            "ABN (600 steps)": "abn", "SAC (ABN at 200 + 400 SAC steps)": "sac", "target labels": "target_labels"}
    text = (ROOT / "docs" / "adaptation.md").read_text(encoding="utf-8")
    table = " ".join(text.split("### Four times the adaptation steps (SSMA")[1].split())

    def states(expected):
        assert " ".join(expected.split()) in table, f"the SSMA 400-step section does not state {expected!r}"

    for title, arm in rows.items():
        low, high = sorted(arms[seed][arm] for seed in ("0", "1"))
        mean = mean_of_seeds(arms, arm)
        states(f"| {title} | " + (f"**{mean:.1f}**" if arm == "abn" else f"{mean:.1f}") + f" | {low:.1f}–{high:.1f} |")
    moves = [arms[seed]["sac"] - arms[seed]["abn_start"] for seed in ("0", "1")]
    states(f"+{moves[0]:.1f} (seed 0) and +{moves[1]:.1f} (seed 1)")
    below = mean_of_seeds(arms, "sac") - mean_of_seeds(arms, "abn")
    states(f"SAC is below ABN on the mean again ({below:+.1f})".replace("-", "−"))
    source, target = mean_of_seeds(arms, "source_only"), mean_of_seeds(arms, "target_labels")
    sac, abn = (round(100 * (mean_of_seeds(arms, a) - source) / (target - source)) for a in ("sac", "abn"))
    states(f"SAC closes {sac} % of the gap between source only and target labels, ABN {abn} %")
    accuracy = [run["sac_pseudo_labels"][seed][k] for seed in ("0", "1") for k in ("accuracy_min", "accuracy_max")]
    states(f"moves between {min(accuracy):.2f} and {max(accuracy):.2f}")
    assert_states("README.md", f"SAC {mean_of_seeds(arms, 'sac'):.1f} ({min(arms[s]['sac'] for s in '01'):.1f}–"
                               f"{max(arms[s]['sac'] for s in '01'):.1f}) against ABN's {mean_of_seeds(arms, 'abn'):.1f}")


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


# --- Pointers to code -------------------------------------------------------------------------
# A newcomer follows the paths and module names that README.md, docs/*.md and the code's own
# docstrings and comments put in backticks; each must lead somewhere. `<...>` stands for any name,
# `*` is a glob, `{a,b}` lists alternatives.

PACKAGE = ROOT / "ssma_tf"
TOP_FOLDERS = ("ssma_tf", "tools", "bench", "tests", "configs", "docs")
CODE = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tools").glob("*.py"), *(ROOT / "bench").glob("*.py"),
               *(ROOT / name for name in ("train.py", "evaluate.py", "predict.py"))])
# Files of the original projects that docstrings cite as the source of a piece of the port.
OTHER_PROJECTS = {"tools/compute_IS_weights.py", "configs/deeplabv2_resnet101_train.yaml"}
FILE_SUFFIXES = ("json", "yaml", "py", "md", "keras", "h5", "config")


def _alternatives(token):
    pattern = re.sub(r"<[^>]*>", "*", token)
    braces = re.search(r"\{([^}]*)\}", pattern)
    if not braces:
        return [pattern]
    return [pattern[:braces.start()] + choice + pattern[braces.end():] for choice in braces.group(1).split(",")]


def _path_exists(pattern):
    return any(ROOT.glob(pattern)) if "*" in pattern else (ROOT / pattern).exists()


def _defined_names(path):
    """The names a module defines or imports at its top level, and its lazy `_EXPORTS`."""
    import ast

    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(e.id for e in elements if isinstance(e, ast.Name))
                if isinstance(target, ast.Name) and target.id == "_EXPORTS" and isinstance(node.value, ast.Dict):
                    names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    return names


def _module_resolves(dotted):
    """`ssma_tf.a.b` is a module, or `ssma_tf.a.b.name` a name that module defines."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return end == len(parts) or parts[end] in _defined_names(path)
    return False


def broken_pointers(path):
    """The backticked repository paths and `ssma_tf.*` names in a file that lead nowhere."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # examples: the user's files
    broken = []
    for span in re.findall(r"`([^`\n]+)`", text):
        for token in span.split():
            token = token.strip("\"'(),;").rstrip(".:")
            token = token[2:] if token.startswith("./") else token
            if "/" in token and token.split("/")[0] in TOP_FOLDERS and token not in OTHER_PROJECTS:
                if not all(_path_exists(p) for p in _alternatives(token)):
                    broken.append(token)
            elif (re.fullmatch(r"ssma_tf(\.\w+)+", token) and token.rsplit(".", 1)[1] not in FILE_SUFFIXES
                  and not _module_resolves(token)):
                broken.append(token)
    return broken


def test_the_pointer_check_finds_a_missing_path_module_and_name(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("`ssma_tf/training/step.py`, `ssma_tf/nowhere.py`, `ssma_tf/cli/<command>.py`, `docs/{training,data}.md`,\n"
                    "`docs/{training,nothing}.md`, `ssma_tf.training.Trainer`, `ssma_tf.data.build_dataset`,\n"
                    "`ssma_tf.training.NoSuchName`, `ssma_tf.no_module`, `assets.extra/ssma_tf.json`\n"
                    "```\npython tools/my_own_script.py\n```\n", encoding="utf-8")
    assert broken_pointers(page) == ["ssma_tf/nowhere.py", "docs/{training,nothing}.md",
                                     "ssma_tf.training.NoSuchName", "ssma_tf.no_module"]


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "configs" / "README.md"], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_backticked_code_paths_and_module_names_in_the_docs_exist(doc):
    assert broken_pointers(doc) == [], f"{doc.relative_to(ROOT)} points to what does not exist"


def test_backticked_code_paths_and_module_names_in_the_code_exist():
    broken = {path.relative_to(ROOT).as_posix(): broken_pointers(path) for path in CODE}
    assert {path: tokens for path, tokens in broken.items() if tokens} == {}
    assert all(not _path_exists(path) for path in OTHER_PROJECTS)  # else the exception is stale


def test_every_ssma_prepare_command_is_listed_where_the_docs_list_them():
    """README's `ssma-prepare {...}` lists and docs/preparing_data.md's table name every subcommand."""
    from ssma_tf.cli.prepare import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    names = set(commands.choices)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"ssma-prepare \{([a-z,]+)\}", readme)
    assert listed and all(set(entry.split(",")) == names for entry in listed), (listed, sorted(names))
    table = (ROOT / "docs" / "preparing_data.md").read_text(encoding="utf-8")
    rows = {name for cell in re.findall(r"^\| (`[^|]+`) \|", table, re.M) for name in re.findall(r"`(\w+)`", cell)}
    assert names <= rows, f"docs/preparing_data.md's table lacks {sorted(names - rows)}"


def test_every_fusion_method_is_in_the_lists_that_name_them():
    """A new fusion (docs/architecture.md) left README's `fusion:` line and the tables of
    docs/fusion.md and the baselines' docstring out of date without a failing test."""
    from ssma_tf.constants import FUSION_METHODS, SSMA_FUSION

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"`fusion: ([a-z_ |]+)` in a fusion config", readme)
    assert line, "README.md: the `fusion: ... ` line of the fusion baselines is gone"
    assert set(line.group(1).split(" | ")) == set(FUSION_METHODS) - {SSMA_FUSION}, "README.md's `fusion:` line"
    table = (ROOT / "docs" / "fusion.md").read_text(encoding="utf-8")
    assert set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M)) >= set(FUSION_METHODS), "docs/fusion.md's table"
    docstring = (ROOT / "ssma_tf" / "models" / "fusion_baselines.py").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| ([a-z_]+) +\|", docstring, re.M)) - {"fusion"}
    assert rows == set(FUSION_METHODS) - {SSMA_FUSION}, "ssma_tf/models/fusion_baselines.py's docstring table"


def test_the_your_dataset_walkthrough_configs_load_and_chain(tmp_path, monkeypatch):
    """The configs of docs/your_dataset.md, each as a user copies it: they load, and each SSMA
    stage starts from the folder of the one before (before: the SSMA stages were prose only)."""
    from ssma_tf.config import config_from_dict

    text = (ROOT / "docs" / "your_dataset.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    palettes = [b for b in blocks if b.startswith("# my_datasets.yaml")]
    configs = {re.match(r"# (\S+\.config)", b).group(1): yaml.safe_load(b) for b in blocks
               if re.match(r"# \S+\.config", b)}
    assert len(palettes) == 1 and sorted(configs) == ["fields_depth.config", "fields_rgb.config",
                                                      "fields_ssma.config", "fields_ssma_stage2.config"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_datasets.yaml").write_text(palettes[0])
    loaded = {name: config_from_dict(values, source=name, check_paths=False) for name, values in configs.items()}
    assert loaded["fields_depth.config"].input_modality == "modality2"
    stage2, stage3 = loaded["fields_ssma_stage2.config"], loaded["fields_ssma.config"]
    assert os.path.dirname(stage2.checkpoint1) == loaded["fields_rgb.config"].checkpoint
    assert os.path.dirname(stage2.checkpoint2) == loaded["fields_depth.config"].checkpoint
    assert stage3.initialize == stage2.checkpoint and not stage2.experts_frozen and stage3.experts_frozen
    for command in ("ssma-train -c fields_depth.config", "ssma-train -c fields_ssma_stage2.config",
                    "ssma-train -c fields_ssma.config", "ssma-evaluate checkpoints/fields_ssma",
                    "ssma-convert -f test.txt -r records/test.tfrecords"):
        assert command in text, command
    for folder in re.findall(r"ssma-(?:predict|export|evaluate) (checkpoints/\w+)", text):
        assert folder in {c.checkpoint.removeprefix(str(tmp_path) + os.sep) for c in loaded.values()}, folder
