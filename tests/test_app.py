"""The web UI (app.py + app_pages/) driven headlessly with Streamlit's AppTest.

Every page runs without an exception; the ranked table is exactly what ``costmodel.search.grid.plan``
returns for the same scenario; bad input shows a readable ``st.error`` and never a traceback;
overrides change the ranking the way the planner says they should; the downloads are the CLI's
files.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
from conftest import FIXTURES, REPO

if str(REPO) not in sys.path:  # app_pages is imported by the app and by one test below
    sys.path.insert(0, str(REPO))

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from costmodel.search.grid import plan
from costmodel.specs.scenario import Constraints, Job, PriceOverride, Scenario

APP = str(REPO / "app.py")
PAGES = ("app_pages/plan.py", "app_pages/compare.py", "app_pages/assumptions.py",
         "app_pages/catalog.py", "app_pages/model.py")
TIMEOUT = 120


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, "page raised: " + "\n".join(e.value for e in at.exception)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _table(at: AppTest):
    frames = [d.value for d in at.dataframe if "cost_total_usd" in d.value.columns and "rank" in d.value.columns]
    assert frames, "no ranked-plans table on the page"
    return frames[0]


def _assert_first_row_matches(at: AppTest, scenario: Scenario, top: int = 50) -> None:
    expected = plan(scenario, top=top).plans.iloc[0]
    got = _table(at).iloc[0]
    for col in ("accelerator", "provider", "offer", "n_devices", "precision", "zero_stage",
                "recompute", "micro_batch"):
        assert got[col] == expected[col], col
    layout = "/".join(str(int(expected[k])) for k in ("tp", "pp", "vpp", "dp", "cp", "ep"))
    assert got["layout"] == layout
    assert math.isclose(got["cost_total_usd"], expected["cost_total_usd"], rel_tol=1e-9)
    assert math.isclose(got["time_total_hours"], expected["time_total_hours"], rel_tol=1e-9)
    assert int(got["rank"]) == 1


def _open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Open a lazy tab (st.tabs(..., on_change="rerun")): only the open tab's content runs."""
    at.session_state[key] = label
    at.run()
    _no_exception(at)
    return at


def _open_fields(at: AppTest) -> AppTest:
    """Open the sidebar's lazy expanders (numerics, constraints, search space): their fields are
    drawn only when open."""
    for key in ("exp_numerics", "exp_constraints", "exp_search"):
        at.session_state[key] = True
    at.run()
    _no_exception(at)
    return at


@pytest.fixture(scope="module")
def default_app() -> AppTest:
    at = _app().run()
    _no_exception(at)
    return at


# Pages ------------------------------------------------------------------------------------------

def test_default_page_ranks_the_default_scenario(default_app):
    at = default_app
    assert not _errors(at)
    assert at.title[0].value == "Training plans"
    _assert_first_row_matches(at, Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)))
    # The first page draws no chart: the selected plan's numbers are a table (the Breakdown CSV's
    # rows for it); the Pareto chart and the infeasible reasons are lazy tabs.
    assert [t.label for t in at.tabs] == ["Selected plan", "Cost against time", "Why other plans are infeasible"]
    assert len(at.get("plotly_chart")) == 0
    numbers = _frame(at, "quantity", "component", "share").value
    best = plan(Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12))).plans.iloc[0]
    mem = numbers[numbers["quantity"] == "Memory per device"]
    assert len(mem) == 9 and mem["component"].iloc[0] == "Weights"
    assert mem["value"].iloc[0] == f"{best['memory_weights_bytes'] / 2**30:,.2f} GiB"
    cost = numbers[numbers["component"] == "Compute (device-hours)"].iloc[0]
    from app_pages import common as c

    assert cost["value"] == c.usd_full(best["cost_compute_usd"])
    assert cost["share"] == f"{best['cost_compute_usd'] / best['cost_total_usd']:.1%}"
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Plans CSV", "Breakdown CSV", "Metadata JSON", "Scenario YAML"]


def test_closed_expanders_keep_their_values():
    """The sidebar's lazy expanders draw their fields only when open; a value set while open
    still applies after they close."""
    at = _app().run()
    keys = {w.key for w in at.sidebar.multiselect} | {w.key for w in at.sidebar.number_input}
    assert not {"in_kinds", "in_tp", "in_deadline_days", "in_accelerators"} & keys
    _open_fields(at)
    at.multiselect(key="in_accelerators").set_value(["h100-sxm5-80gb"])
    at.number_input(key="in_max_devices").set_value(64)
    at.button(key="run_plan").click().run()
    for key in ("exp_numerics", "exp_constraints", "exp_search"):
        at.session_state[key] = False
    at.run()
    _no_exception(at)
    assert "in_accelerators" not in {w.key for w in at.sidebar.multiselect}
    table = _table(at)
    assert set(table["accelerator"]) == {"h100-sxm5-80gb"} and table["n_devices"].max() <= 64


def test_pareto_and_infeasible_tabs(default_app):
    at = _open_tab(default_app, "plan_tab", "Cost against time")
    specs = [json.loads(ch.proto.spec) for ch in at.get("plotly_chart")]
    assert len(specs) == 1 and "log" in json.dumps(specs[0]["layout"]["xaxis"])
    at = _open_tab(at, "plan_tab", "Why other plans are infeasible")
    reasons = [d.value for d in at.dataframe if "Reason" in d.value.columns]
    assert reasons and "out of memory" in set(reasons[0]["Reason"])
    assert len(at.get("plotly_chart")) == 1
    _open_tab(at, "plan_tab", "Selected plan")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs(page):
    at = _app().run()
    at.switch_page(page).run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    assert at.title, f"{page} has no title"


def test_selecting_a_plan_shows_its_details(default_app):
    at = default_app
    box = at.selectbox(key="selected_plan")
    assert box.options[0].startswith("#1 ")
    box.select_index(2).run()
    _no_exception(at)
    third = _table(at).iloc[2]
    assert at.selectbox(key="selected_plan").value == third["plan_id"]
    assert any(f"{int(third['n_devices']):,} devices" in c.value for c in at.caption)


@pytest.mark.parametrize("view, expect", [
    ("Step time", "tokens/s per device"),
    ("Cost", "device-hours"),
])
def test_detail_views(default_app, view, expect):
    at = default_app
    at.segmented_control(key="detail_view").set_value(view).run()
    _no_exception(at)
    assert any(expect in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the detail view's chart, nothing else
    at.segmented_control(key="detail_view").set_value("Numbers").run()


def test_assumptions_used_by_the_selected_plan(default_app):
    at = default_app
    at.selectbox(key="selected_plan").select_index(0).run()
    at.segmented_control(key="detail_view").set_value("Assumptions used").run()
    _no_exception(at)
    best = _table(at).iloc[0]
    frames = [d.value for d in at.dataframe]

    def frame(*cols):
        return next(f for f in frames if set(cols) <= set(f.columns))

    price = frame("offer", "usd_per_device_hour", "as_of", "source")
    assert list(price["offer"]) == [best["offer"]]
    assert price["as_of"].iloc[0] and price["source"].iloc[0]
    eff = frame("quantity", "precision", "value", "source")
    assert set(eff["accelerator"]) == {best["accelerator"]}
    assert {"matmul", "memory_bandwidth"} <= set(eff["quantity"]) and eff["source"].all()
    knobs = frame("name", "value", "unit", "source")
    assert "fragmentation_fraction" in set(knobs["name"])


# Choosing a preset and a job --------------------------------------------------------------------

def test_preset_and_job_give_the_planner_ranking():
    at = _open_fields(_app().run())
    at.selectbox(key="in_preset").set_value("mistral-7b").run()
    _no_exception(at)
    assert "mistral-7b" in at.sidebar.markdown[0].value or any(
        "mistral-7b" in m.value for m in at.sidebar.markdown)
    at.radio(key="in_job_kind").set_value("finetune")
    at.number_input(key="in_train_tokens_b").set_value(20.0)
    at.number_input(key="in_seq_len").set_value(8192)
    at.number_input(key="in_global_batch").set_value(256)
    at.multiselect(key="in_pricing").set_value(["on-demand", "spot"])
    at.button(key="run_plan").click().run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    sc = Scenario(model="mistral-7b",
                  job=Job(kind="finetune", train_tokens=20e9, seq_len=8192, global_batch=256),
                  constraints=Constraints(pricing_models=["on-demand", "spot"]))
    _assert_first_row_matches(at, sc)


def test_search_space_and_rank_placement_reach_the_planner():
    at = _open_fields(_app().run())
    at.multiselect(key="in_accelerators").set_value(["h100-sxm5-80gb", "a100-sxm4-80gb"])
    at.multiselect(key="in_precision").set_value(["bf16"])
    at.selectbox(key="in_rank_order").set_value("dp-tp-cp-pp")
    at.number_input(key="in_max_devices").set_value(512)
    at.selectbox(key="in_objective").set_value("time")
    at.button(key="run_plan").click().run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    from costmodel.specs.scenario import SearchSpace

    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12), objective="time",
                  constraints=Constraints(max_devices=512),
                  search=SearchSpace(accelerators=["h100-sxm5-80gb", "a100-sxm4-80gb"],
                                     precision=["bf16"], rank_order="dp-tp-cp-pp"))
    _assert_first_row_matches(at, sc)
    assert set(_table(at)["accelerator"]) <= {"h100-sxm5-80gb", "a100-sxm4-80gb"}


def test_uploaded_config_plans_like_the_preset():
    at = _app().run()
    at.radio(key="in_model_source").set_value("Hugging Face config.json").run()
    data = (FIXTURES / "hf_configs" / "llama-3.1-8b.json").read_bytes()
    at.file_uploader(key="up_config").set_value(("llama-3.1-8b.json", data, "application/json")).run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    assert any("8.03 B parameters" in m.value for m in at.sidebar.markdown)
    import costmodel

    spec = costmodel.spec_from_hf_config(json.loads(data), name="llama-3.1-8b")
    _assert_first_row_matches(at, Scenario(model=spec, job=Job(train_tokens=1e12)))


# Bad input: a readable error, never a traceback -------------------------------------------------

def _hf_text(at: AppTest, text: str) -> AppTest:
    at.radio(key="in_model_source").set_value("Hugging Face config.json").run()
    at.text_area(key="in_config_text").set_value(text).run()
    _no_exception(at)
    return at


def test_invalid_config_json_text_shows_an_error():
    at = _hf_text(_app().run(), '{"model_type": "llama", "hidden_size": 4096,')
    errs = _errors(at)
    assert errs and any("not valid JSON" in e for e in errs), errs
    assert not any("Traceback" in e for e in errs)


def test_invalid_config_upload_shows_an_error():
    at = _app().run()
    at.radio(key="in_model_source").set_value("Hugging Face config.json").run()
    at.file_uploader(key="up_config").set_value(("config.json", b"this is not json", "application/json")).run()
    _no_exception(at)
    assert any("not valid JSON" in e for e in _errors(at)), _errors(at)


def test_unsupported_model_type_lists_the_supported_ones():
    at = _hf_text(_app().run(), json.dumps({"model_type": "t5", "d_model": 512}))
    errs = _errors(at)
    assert any("unsupported model_type 't5'" in e and "llama" in e for e in errs), errs


def test_config_missing_a_field_names_it():
    cfg = json.loads((FIXTURES / "hf_configs" / "llama-3.1-8b.json").read_text())
    del cfg["hidden_size"]
    errs = _errors(_hf_text(_app().run(), json.dumps(cfg)))
    assert any("hidden_size" in e for e in errs), errs


def test_impossible_custom_dimensions_show_an_error():
    at = _app().run()
    at.radio(key="in_model_source").set_value("Custom dimensions").run()
    _no_exception(at)
    assert not _errors(at), _errors(at)  # the default custom model is valid
    at.number_input(key="in_c_n_heads").set_value(30).run()
    _no_exception(at)
    errs = _errors(at)
    assert any("d_model (4096) is not divisible by n_heads (30)" in e for e in errs), errs
    at.number_input(key="in_c_n_heads").set_value(32)
    at.number_input(key="in_c_n_kv_heads").set_value(64).run()
    assert any("n_kv_heads (64) exceeds n_heads (32)" in e for e in _errors(at)), _errors(at)


def test_custom_dimensions_plan_like_the_planner():
    at = _app().run()
    at.radio(key="in_model_source").set_value("Custom dimensions").run()
    at.number_input(key="in_c_n_layers").set_value(16).run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    import costmodel

    spec = costmodel.preset("llama-3.1-8b").with_changes(
        n_layers=16, name="custom-model",
        source="custom dimensions entered in the web UI (based on preset llama-3.1-8b)")
    _assert_first_row_matches(at, Scenario(model=spec, job=Job(train_tokens=1e12)))


@pytest.mark.parametrize("setup, expected", [
    ({"in_kinds": []}, "at least one accelerator kind is needed"),
    ({"in_kinds": ["tpu"], "in_providers": ["TensorWave"]}, "no offer matches the constraints"),
    ({"in_tp": []}, "tp is empty"),
    ({"in_accelerators": ["versal-vck5000"], "in_pricing": ["capacity-block"]}, "search space is empty"),
])
def test_empty_search_space_shows_an_error(setup, expected):
    at = _open_fields(_app().run())
    for key, value in setup.items():
        at.multiselect(key=key).set_value(value)
    at.button(key="run_plan").click().run()
    _no_exception(at)
    errs = _errors(at)
    assert any(expected in e for e in errs), errs


def test_no_feasible_plan_explains_why():
    at = _open_fields(_app().run())
    at.number_input(key="in_deadline_days").set_value(0.01)
    at.button(key="run_plan").click().run()
    _no_exception(at)
    assert any("No feasible plan" in w.value for w in at.warning)
    reasons = next(d.value for d in at.dataframe if "Reason" in d.value.columns)
    assert "misses deadline" in set(reasons["Reason"])


def test_impossible_layout_on_the_model_page_shows_an_error():
    at = _app().run()
    at.switch_page("app_pages/model.py").run()
    at.selectbox(key="in_m_tp").set_value(64).run()
    _no_exception(at)
    assert any("Cannot estimate memory" in e for e in _errors(at)), _errors(at)


# Overrides --------------------------------------------------------------------------------------

def test_price_override_updates_the_ranking():
    at = _app().run()
    first = _table(at).iloc[0]
    at.switch_page("app_pages/assumptions.py").run()
    _no_exception(at)
    _open_tab(at, "assume_tab", "Prices")
    at.selectbox(key="ov_price_acc").set_value(first["accelerator"]).run()
    box = at.selectbox(key="ov_price_offer")
    key = next(o for o in box.options if first["offer"] in str(o) and first["provider"] in str(o))
    box.set_value(key).run()
    at.number_input(key="ov_price_value").set_value(50.0)
    at.button(key="ov_price_apply").click().run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    at.switch_page("app_pages/plan.py").run()
    _no_exception(at)
    o = next(o for o in __import__("costmodel.tables.catalog", fromlist=["x"]).engine_catalog().offers
             if o.provider == first["provider"] and o.offer == first["offer"]
             and o.region == first["region"] and o.pricing_model == first["pricing_model"])
    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12), price_overrides=[PriceOverride(
        provider=o.provider, offer=o.offer, region=o.region, pricing_model=o.pricing_model,
        usd_per_device_hour=50.0)])
    _assert_first_row_matches(at, sc)
    assert _table(at).iloc[0]["offer"] != first["offer"] or _table(at).iloc[0]["provider"] != first["provider"]
    assert any("override" in i.value for i in at.info)


def test_knob_and_efficiency_overrides_apply():
    at = _app().run()
    at.switch_page("app_pages/assumptions.py").run()
    _open_tab(at, "assume_tab", "Framework knobs")
    at.selectbox(key="ov_knob_name").set_value("fragmentation_fraction").run()
    at.number_input(key="ov_knob_value").set_value(0.2)
    at.button(key="ov_knob_apply").click().run()
    _no_exception(at)
    _open_tab(at, "assume_tab", "Efficiencies")
    at.selectbox(key="ov_eff_acc").set_value("mi300x-192gb").run()
    at.selectbox(key="ov_eff_quantity").set_value("matmul").run()
    at.selectbox(key="ov_eff_precision").set_value("fp8").run()
    at.number_input(key="ov_eff_value").set_value(0.2)
    at.button(key="ov_eff_apply").click().run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    assert at.session_state["overrides"]["knobs"] == {"fragmentation_fraction": 0.2}
    assert at.session_state["overrides"]["efficiency"] == [
        {"accelerator": "mi300x-192gb", "quantity": "matmul", "precision": "fp8", "value": 0.2}]
    at.switch_page("app_pages/plan.py").run()
    _no_exception(at)
    from costmodel.specs.scenario import EfficiencyOverride

    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12),
                  overrides={"fragmentation_fraction": 0.2},
                  efficiency_overrides=[EfficiencyOverride(accelerator="mi300x-192gb", quantity="matmul",
                                                           precision="fp8", value=0.2)])
    _assert_first_row_matches(at, sc)
    # Clearing restores the shipped ranking.
    at.switch_page("app_pages/assumptions.py").run()
    at.button(key="ov_clear").click().run()
    _no_exception(at)
    at.switch_page("app_pages/plan.py").run()
    _assert_first_row_matches(at, Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)))


def test_inputs_survive_a_page_switch():
    at = _app().run()
    at.selectbox(key="in_preset").set_value("qwen2.5-7b").run()
    at.number_input(key="in_train_tokens_b").set_value(300.0)
    at.button(key="run_plan").click().run()
    at.switch_page("app_pages/catalog.py").run()
    at.switch_page("app_pages/plan.py").run()
    _no_exception(at)
    assert at.selectbox(key="in_preset").value == "qwen2.5-7b"
    assert at.number_input(key="in_train_tokens_b").value == 300.0
    _assert_first_row_matches(at, Scenario(model="qwen2.5-7b", job=Job(train_tokens=300e9)))


def test_compare_page_shows_three_plans_side_by_side():
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    _no_exception(at)
    table = next(d.value for d in at.dataframe if "Quantity" in d.value.columns)
    assert len(table.columns) == 4  # Quantity + three plans
    assert "Total cost (USD)" in set(table["Quantity"])
    assert len(at.multiselect(key="cmp_plans").value) == 3


# Downloads are the CLI's files ------------------------------------------------------------------

def test_report_files_are_the_cli_files(tmp_path):
    from app_pages.common import run_plan
    from costmodel.faces.cli import main

    sc = Scenario(model="gpt2", job=Job(train_tokens=1e9), constraints=Constraints(max_devices=64))
    view = run_plan(sc.to_yaml(), 7)
    path = tmp_path / "scenario.yaml"
    path.write_text(view["scenario_yaml"])
    assert main(["plan", str(path), "--top", "7", "--csv", str(tmp_path / "cli.csv"), "--no-progress"]) == 0
    assert view["files"]["plans"] == (tmp_path / "cli.csv").read_bytes()
    assert view["files"]["breakdown"] == (tmp_path / "cli_breakdown.csv").read_bytes()
    ui_meta = json.loads(view["files"]["metadata"])
    cli_meta = json.loads((tmp_path / "cli_metadata.json").read_text())
    for volatile in ("generated_at",):
        ui_meta.pop(volatile), cli_meta.pop(volatile)
    ui_meta["search"].pop("seconds"), cli_meta["search"].pop("seconds")
    assert ui_meta == cli_meta
    assert view["files"]["plans"].decode().startswith("rank,accelerator,")


# Serving ----------------------------------------------------------------------------------------

SERVE_LOAD = {"in_serve_rps": 20.0, "in_serve_input_len": 1000, "in_serve_output_len": 250,
              "in_serve_ttft": 2.0, "in_serve_tpot": 0.1}


def _serve(at: AppTest, **inputs) -> AppTest:
    """Switch the job to serving, set number inputs / the hourly text, and run the plan."""
    at.radio(key="in_job_kind").set_value("serve").run()
    _no_exception(at)
    for key, value in inputs.items():
        widget = at.text_input(key=key) if key == "in_serve_hourly" else at.number_input(key=key)
        widget.set_value(value)
    at.button(key="run_plan").click().run()
    _no_exception(at)
    return at


def _serve_table(at: AppTest):
    frames = [d.value for d in at.dataframe if "cost_per_month_usd" in d.value.columns]
    assert frames, "no ranked serving-plans table on the page"
    return frames[0]


def _serve_scenario(**load) -> Scenario:
    from costmodel import ServingLoad

    fields = {"requests_per_s": 20.0, "input_len": 1000, "output_len": 250, "ttft_p95_s": 2.0,
              "tpot_p95_s": 0.1, **load}
    return Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=ServingLoad(**fields)))


@pytest.fixture(scope="module")
def serve_app() -> AppTest:
    return _serve(_app().run(), **SERVE_LOAD)


def test_serving_plan_is_the_planner_ranking(serve_app):
    at = serve_app
    assert not _errors(at), _errors(at)
    assert at.title[0].value == "Serving plans"
    # Training-only inputs are hidden; the load and the SLOs are shown.
    keys = {w.key for w in at.sidebar.number_input}
    assert {"in_serve_rps", "in_serve_ttft", "in_serve_tpot", "in_serve_e2e"} <= keys
    assert not {"in_train_tokens_b", "in_seq_len", "in_global_batch", "in_deadline_days"} & keys
    expected = plan(_serve_scenario(), top=50).plans.iloc[0]
    got = _serve_table(at).iloc[0]
    assert math.isclose(got["cost_per_month_usd"], expected["cost_per_month_usd"], rel_tol=1e-9)
    assert int(got["replicas"]) == int(expected["replicas"]) and int(got["rank"]) == 1
    for col in ("accelerator", "offer", "n_devices", "precision", "kv_bits", "batch_size"):
        assert got[col] == expected[col], col
    assert math.isclose(got["e2e_p95_s"], expected["e2e_p95_s"], rel_tol=1e-9)
    # Pareto tab: chart (monthly cost vs p95 latency, with the cheapest API's line when the model
    # has one) and cost against published quality impact.
    assert len(at.get("plotly_chart")) == 0
    at = _open_tab(at, "plan_tab", "Monthly cost against p95 latency")
    specs = [json.loads(ch.proto.spec) for ch in at.get("plotly_chart")]
    _open_tab(at, "plan_tab", "Selected plan")
    assert len(specs) == 2
    assert "quality" in specs[1]["layout"]["title"]["text"].lower()
    names = [t.get("name", "") for t in specs[0]["data"]]
    assert names[:2] == ["Ranked plans", "Pareto front (monthly cost vs p95 latency)"]
    if not math.isnan(expected["api_cost_per_month_usd"]):
        assert any(n.startswith("Cheapest API") for n in names)
    assert "latency" in specs[0]["layout"]["xaxis"]["title"]["text"]


@pytest.mark.parametrize("view, key", [
    ("Decode iteration", "decode"),
    ("Latency vs throughput", "tokens/s per replica"),
])
def test_serving_detail_views(serve_app, view, key):
    at = serve_app
    at.segmented_control(key="serve_detail_view").set_value(view).run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    specs = [json.loads(ch.proto.spec) for ch in at.get("plotly_chart")]
    assert len(specs) == 1  # the detail view's chart (the Pareto tab is closed)
    texts = json.dumps(specs[0]["layout"]).lower()
    assert key.lower() in texts
    at.segmented_control(key="serve_detail_view").set_value("Numbers").run()


def test_serving_curve_is_the_selected_plan_replica(serve_app):
    from app_pages.common import curve_inputs, serving_curve

    row = plan(_serve_scenario(), top=50).plans.iloc[0]
    curve = serving_curve(_serve_scenario().to_yaml(), curve_inputs(row))
    at_batch = curve[curve["batch"] == int(row["batch_size"])]
    assert len(at_batch) == 1 and bool(at_batch["fits_in_memory"].iloc[0])
    assert math.isclose(at_batch["tpot_s"].iloc[0], row["tpot_p95_s"], rel_tol=1e-9)
    assert math.isclose(at_batch["output_tokens_per_s_per_replica"].iloc[0],
                        row["output_tokens_per_s_per_replica"], rel_tol=1e-9)


@pytest.mark.parametrize("text, expected", [
    (", ".join(["1"] * 23), "needs 24 comma-separated values"),
    ("busy at noon", "is not a number"),
])
def test_bad_hourly_profile_names_the_field(text, expected):
    at = _serve(_app().run(), in_serve_hourly=text)
    errs = _errors(at)
    assert any("Hourly profile" in e and expected in e for e in errs), errs
    assert not any("Traceback" in e for e in errs)


def test_hourly_profile_reaches_the_planner():
    profile = [0.5] * 8 + [1.5] * 8 + [1.0] * 8
    at = _serve(_app().run(), in_serve_rps=20.0, in_serve_tpot=0.1,
                in_serve_hourly=", ".join(str(x) for x in profile))
    assert not _errors(at), _errors(at)
    expected = plan(_serve_scenario(ttft_p95_s=None, hourly_profile=profile), top=50).plans.iloc[0]
    got = _serve_table(at).iloc[0]
    assert math.isclose(got["cost_per_month_usd"], expected["cost_per_month_usd"], rel_tol=1e-9)
    assert math.isclose(got["cost_autoscaled_per_month_usd"], expected["cost_autoscaled_per_month_usd"],
                        rel_tol=1e-9)


def test_serving_slos_nobody_meets_explain_why():
    at = _serve(_app().run(), in_serve_tpot=1e-5, in_serve_ttft=1e-4)
    assert not _errors(at), _errors(at)
    assert any("No feasible plan" in w.value for w in at.warning)
    reasons = set(next(d.value for d in at.dataframe if "Reason" in d.value.columns)["Reason"])
    assert reasons & {"misses TPOT SLO", "misses TTFT or latency SLO"}, reasons


def test_compare_page_shows_serving_plans(serve_app):
    at = serve_app
    at.switch_page("app_pages/compare.py").run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    table = next(d.value for d in at.dataframe if "Quantity" in d.value.columns)
    assert {"Cost per month (USD)", "Replicas", "p95 time per output token (s)"} <= set(table["Quantity"])
    assert len(table.columns) == 4
    # Back to training: the training page is as before.
    at.switch_page("app_pages/plan.py").run()
    at.radio(key="in_job_kind").set_value("pretrain").run()
    _no_exception(at)
    assert at.title[0].value == "Training plans"
    _assert_first_row_matches(at, Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)))


def test_serving_search_space_reaches_the_planner():
    from app_pages.common import SERVE_KEYS, SERVE_PRECISION_FIELD
    from costmodel.specs.scenario import SearchSpace

    at = _app().run()
    at.radio(key="in_job_kind").set_value("serve").run()
    _open_fields(at)
    at.multiselect(key="in_accelerators").set_value(["h100-sxm5-80gb"])
    at.multiselect(key="in_tp").set_value([1, 2])
    at.multiselect(key=SERVE_KEYS[SERVE_PRECISION_FIELD]).set_value(["bf16"])
    at.multiselect(key=SERVE_KEYS["kv_bits"]).set_value([16])
    at.multiselect(key=SERVE_KEYS["disaggregated"]).set_value([False])
    at.number_input(key="in_serve_rps").set_value(50.0)
    at.number_input(key="in_serve_tpot").set_value(0.05)
    at.button(key="run_plan").click().run()
    _no_exception(at)
    assert not _errors(at), _errors(at)
    sc = _serve_scenario(requests_per_s=50.0, ttft_p95_s=None, tpot_p95_s=0.05).model_copy(update={
        "search": SearchSpace(accelerators=["h100-sxm5-80gb"], tp=[1, 2], kv_bits=[16],
                              disaggregated=[False], **{SERVE_PRECISION_FIELD: ["bf16"]})})
    expected = plan(sc, top=50).plans.iloc[0]
    table = _serve_table(at)
    got = table.iloc[0]
    assert math.isclose(got["cost_per_month_usd"], expected["cost_per_month_usd"], rel_tol=1e-9)
    assert int(got["replicas"]) == int(expected["replicas"])
    assert set(table["accelerator"]) == {"h100-sxm5-80gb"} and set(table["precision"]) == {"bf16"}
    assert set(table["kv_bits"]) == {16}


# Formatting: compact where space is short, in full in tables, units, "—" when unknown -----------

def test_formatting_helpers():
    from app_pages import common as c

    assert c.usd(24_124_531.6) == "$24.1M"
    assert c.usd(3_200) == "$3.2k"
    assert c.usd(512.4) == "$512"
    assert c.usd(None) == c.usd(float("nan")) == "—"
    assert c.usd_full(24_124_531.6) == "$24,124,532"  # no cents above $1,000
    assert c.usd_full(512.4) == "$512.40"
    assert c.count(1234567) == "1,234,567"
    assert c.usd_rate(2.49) == "$2.49" and c.usd_rate(0.01234) == "$0.0123"
    assert c.duration(0.5) == "30.0 min"
    assert c.duration(35.25) == "35.2 h"  # hours under a few days, never "0.0 days"
    assert c.duration(24 * 12.5) == "12.5 days"
    assert c.gib(80 * 2**30) == "80.0 GiB"
    assert c.tb_per_s(3.35e12) == "3.35 TB/s"
    assert c.tflops(989.4e12) == "989.4 TFLOP/s"
    assert c.text(None) == "—"
    assert c.knob_range({"range": "[0, 68719476736]", "unit": "bytes", "min": 0,
                         "max": 68719476736}) == "[0.0 GiB, 64.0 GiB]"
    assert c.knob_range({"range": "(0, 2]", "unit": "fraction"}) == "(0, 2]"


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _frame(at: AppTest, *columns: str):
    """The first table (element) with all of ``columns`` (st.dataframe keys are not exposed)."""
    hits = [d for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert hits, f"no table with columns {columns}"
    return hits[0]


def _column_format(at: AppTest, column: str, *others: str) -> str:
    config = json.loads(_frame(at, column, *others).proto.columns)
    return config[column]["type_config"]["format"]


def test_large_amounts_compact_in_metrics_full_in_the_table():
    """A $24.1M plan: "$24.1M" in the metric, "$%,.0f" (24,124,532) in the table, time in days."""
    at = _app().run()
    at.selectbox(key="in_preset").set_value("llama-3.1-70b").run()
    at.number_input(key="in_train_tokens_b").set_value(15000.0)
    at.button(key="run_plan").click().run()
    _no_exception(at)
    best = _table(at).iloc[0]
    from app_pages import common as c

    assert best["cost_total_usd"] > 1e6
    assert _metric(at, "Best plan: cost") == c.usd(best["cost_total_usd"])
    assert _metric(at, "Best plan: cost").endswith("M") and "," not in _metric(at, "Best plan: cost")
    assert _column_format(at, "cost_total_usd", "rank") == "$%,.0f"
    assert c.usd_full(best["cost_total_usd"]) == f"${best['cost_total_usd']:,.0f}"
    assert _metric(at, "Time") == c.duration(best["time_total_hours"])
    assert "0.0 days" not in _metric(at, "Time")
    _open_tab(at, "plan_tab", "Why other plans are infeasible")
    assert _column_format(at, "Plans", "Reason") == "%,d"


def test_short_runs_read_in_hours():
    at = _app().run()
    at.selectbox(key="in_preset").set_value("gpt2").run()
    at.number_input(key="in_train_tokens_b").set_value(1.0)
    at.button(key="run_plan").click().run()
    _no_exception(at)
    time_text = _metric(at, "Time")
    assert "days" not in time_text and ("h" in time_text or "min" in time_text), time_text


def test_assumptions_used_show_units_and_ranges(default_app):
    at = default_app
    at.segmented_control(key="detail_view").set_value("Assumptions used").run()
    _no_exception(at)
    hw = _frame(at, "memory", "memory bandwidth").value
    assert "GiB" in hw["memory"].iloc[0] and "TB/s" in hw["memory bandwidth"].iloc[0]
    assert any(str(v).endswith("TFLOP/s") for v in hw.filter(like="peak ").iloc[0])
    assert not any("{" in str(v) for v in hw.iloc[0])  # no JSON blob
    knobs = _frame(at, "name", "range").value
    assert "range" in knobs.columns and knobs["range"].str.len().min() > 0
    cuda = knobs[knobs["name"] == "cuda_context_bytes"].iloc[0]
    assert cuda["value"].endswith("GiB") and "GiB" in cuda["range"]
    for frame in (hw, knobs, _frame(at, "usd_per_device_hour", "source").value):
        assert not frame.isin(["None"]).any().any() and not frame.isna().any().any()
    at.segmented_control(key="detail_view").set_value("Memory").run()


def test_assumptions_page_knob_table_has_ranges():
    at = _app().run()
    at.switch_page("app_pages/assumptions.py").run()
    _open_tab(at, "assume_tab", "Framework knobs")
    knobs = _frame(at, "name", "range").value
    assert {"value", "unit", "range"} <= set(knobs.columns)
    assert knobs[knobs["name"] == "cuda_context_bytes"]["value"].iloc[0].endswith("GiB")


def test_catalog_shows_units_and_no_none():
    at = _app().run()
    at.switch_page("app_pages/catalog.py").run()
    _no_exception(at)
    acc = _frame(at, "memory", "memory bandwidth").value
    assert acc["memory"].str.endswith("GiB").all() and acc["memory bandwidth"].str.endswith("TB/s").all()
    assert not acc.isin(["None"]).any().any() and not acc.isna().any().any()
    for label in ("Offers", "Systems", "Efficiency data", "Other prices"):
        _open_tab(at, "cat_tab", label)
        for d in at.dataframe:
            assert not d.value.isna().any().any(), label


def test_compare_labels_tell_plans_apart():
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    _no_exception(at)
    box = at.multiselect(key="cmp_plans")
    assert len(set(box.options)) == len(box.options)
    table = next(d.value for d in at.dataframe if "Quantity" in d.value.columns)
    names = [c for c in table.columns if c != "Quantity"]
    assert len(set(names)) == len(names) == 3
    assert all("/" in n and "x" in n for n in names)  # layout and device count in the label


# The launcher (make run) ------------------------------------------------------------------------

def test_launcher_warms_the_scenario_a_new_session_plans(monkeypatch):
    """``app_pages.serve`` renders the page once before the server starts: it searches the
    scenario a new session plans first (so that search is answered by the step-time memo), its
    render fills the page's cache, and the launcher's arguments reach ``streamlit run app.py``
    unchanged."""
    import numpy as np

    import app_pages.common as c
    import costmodel.jobs.train as train
    from app_pages import serve

    seen = []
    real_plan = c.plan
    monkeypatch.setattr(c, "plan", lambda sc, **kw: seen.append(sc.to_yaml()) or real_plan(sc, **kw))
    c.run_plan.clear()  # earlier tests cached the default scenario's plan
    _no_exception(_app().run())
    fresh = list(seen)  # what a new session plans
    assert len(fresh) == 1

    calls = []
    monkeypatch.setattr("streamlit.web.cli.main", lambda: calls.append(list(sys.argv)))
    monkeypatch.setattr(c, "started", lambda workers: False)  # as in the launcher's fresh process
    train.STEP_MEMO.clear()
    c.run_plan.clear()
    seen.clear()
    serve.main(["--server.port", "8599"])
    assert calls == [["streamlit", "run", str(REPO / "app.py"), "--server.port", "8599"]]
    assert seen == fresh  # the launcher searched what a new session plans
    seen.clear()
    _no_exception(_app().run())
    assert seen == []  # the launcher's headless render left the default plan in the page's cache
    rows = []
    real = train.evaluate_training

    def counting(m, t, *a, **kw):
        if kw.get("report") is False:  # timing for pricing (the kept rows' reports are not counted)
            rows.append(np.size(t.tp))
        return real(m, t, *a, **kw)

    monkeypatch.setattr(train, "evaluate_training", counting)
    plan(Scenario.from_dict(__import__("yaml").safe_load(fresh[0]), where="scenario"), top=c.DEFAULT_TOP,
         workers=1)
    assert sum(rows) == 0  # every configuration of the default search was timed by the launcher
