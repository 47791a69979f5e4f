"""Property-based tests (hypothesis) of the model-spec boundary: ``ModelSpec`` sizes and the Hugging
Face ``config.json`` import. Whatever JSON a config holds, the import either gives a spec whose
parameter count is finite and positive, or raises ``ModelSpecError`` naming the offending field;
never another exception type."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costmodel
from costmodel import ModelSpecError, spec_from_hf_config
from costmodel.specs.spec import COUNT_FIELDS, HF_MODEL_TYPES, count_bounds, make_spec

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
FIXTURE_CONFIGS = {p.name: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}

#: Every config.json field some converter reads, plus a few it ignores.
READ_KEYS = (
    "model_type", "_name_or_path", "hidden_act", "num_hidden_layers", "hidden_size",
    "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size",
    "tie_word_embeddings", "attention_bias", "mlp_bias", "head_dim", "num_local_experts",
    "num_experts_per_tok", "n_embd", "n_inner", "n_layer", "n_head", "n_positions",
    "position_embedding_type", "max_position_embeddings", "type_vocab_size", "moe_layer_freq",
    "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
    "n_routed_experts", "n_shared_experts", "moe_intermediate_size", "first_k_dense_replace",
    "topk_method",
)
IGNORED_KEYS = ("rope_theta", "architectures", "torch_dtype", "rope_scaling", "use_cache")
BOOLEAN_KEYS = ("tie_word_embeddings", "attention_bias", "mlp_bias")

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DELETE = object()  # a mutation that removes the field

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-4, max_value=130),  # small values, often valid
    st.integers(),
    st.sampled_from([2**31, 2**63, 10**30, -(10**30), 10**400, 1_048_577, 16_777_217, 65_537]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 8.0, 4096.0, 2.5, -1.0, 1e300, float("nan"), float("inf")]),
    st.text(max_size=10),
    st.sampled_from(["true", "false", "True", "0", "1", "4096", "8", "silu", "gelu", "relu",
                     "absolute", "noaux_tc", "llama", "gpt2", ""]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=6,
)
mutations = st.dictionaries(st.sampled_from(READ_KEYS + IGNORED_KEYS),
                            st.one_of(json_values, st.just(DELETE)), min_size=1, max_size=4)


def _apply(base: dict, changes: dict) -> dict:
    cfg = dict(base)
    for key, value in changes.items():
        if value is DELETE:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


def _mentions(message: str, key: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", message) is not None


def _check_spec(spec: costmodel.ModelSpec) -> None:
    total = float(costmodel.parameter_count(spec).total)
    assert math.isfinite(total) and total > 0, (spec, total)
    active = float(costmodel.active_parameter_count(spec).total)
    assert math.isfinite(active) and 0 < active <= total


def _load(cfg: dict) -> costmodel.ModelSpec | ModelSpecError:
    """The spec, or the ModelSpecError; any other exception fails the test."""
    try:
        return spec_from_hf_config(cfg)
    except ModelSpecError as exc:
        return exc


@SETTINGS
@given(fixture=st.sampled_from(sorted(FIXTURE_CONFIGS)), key=st.sampled_from(READ_KEYS + IGNORED_KEYS),
       value=st.one_of(json_values, st.just(DELETE)))
def test_one_bad_field_is_named_or_the_spec_is_sound(fixture, key, value):
    cfg = _apply(FIXTURE_CONFIGS[fixture], {key: value})
    result = _load(cfg)
    if isinstance(result, ModelSpecError):
        assert _mentions(str(result), key), (key, value, str(result))
    else:
        _check_spec(result)
        if key in BOOLEAN_KEYS and key in cfg and not isinstance(cfg[key], bool):
            # A non-boolean in a boolean field can only load when the model type ignores it.
            assert key not in _keys_read(cfg["model_type"]), (key, value)


@SETTINGS
@given(fixture=st.sampled_from(sorted(FIXTURE_CONFIGS)), changes=mutations)
def test_mutated_configs_load_soundly_or_name_a_changed_field(fixture, changes):
    result = _load(_apply(FIXTURE_CONFIGS[fixture], changes))
    if isinstance(result, ModelSpecError):
        assert any(_mentions(str(result), key) for key in changes), (changes, str(result))
    else:
        _check_spec(result)


@SETTINGS
@given(model_type=st.one_of(st.sampled_from(sorted(HF_MODEL_TYPES)), json_values),
       fields=st.dictionaries(st.sampled_from(READ_KEYS[1:] + IGNORED_KEYS), json_values, max_size=40))
def test_random_configs_load_soundly_or_name_a_field(model_type, fields):
    result = _load({"model_type": model_type, **fields})
    if isinstance(result, ModelSpecError):
        assert any(_mentions(str(result), key) for key in READ_KEYS), str(result)
    else:
        _check_spec(result)


@SETTINGS
@given(document=json_values)
def test_any_json_document_loads_or_is_a_model_spec_error(document):
    for form in (document, json.dumps(document), json.dumps(document).encode()):
        result = _load(form)  # type: ignore[arg-type]
        if not isinstance(result, ModelSpecError):
            _check_spec(result)


@SETTINGS
@given(raw=st.binary(max_size=64))
def test_arbitrary_bytes_are_a_model_spec_error(raw):
    with pytest.raises(ModelSpecError):
        spec_from_hf_config(b"{" + raw)


def _keys_read(model_type: str) -> set[str]:
    """The config fields a model type's converter reads (those whose removal changes the result)."""
    base = next(c for c in FIXTURE_CONFIGS.values() if c["model_type"] == model_type)
    reference = spec_from_hf_config(base)
    read = set()
    for key in READ_KEYS:
        probe = {**base, key: ["not a valid value"]}
        try:
            spec_from_hf_config(probe)
        except ModelSpecError:
            read.add(key)
            continue
        assert spec_from_hf_config(probe) == reference
    return read


# Byte-order mark ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", sorted(FIXTURE_CONFIGS))
def test_a_utf8_bom_loads_to_the_same_spec(tmp_path, fixture):
    raw = (FIXTURES / fixture).read_bytes()
    bom = b"\xef\xbb\xbf" + raw
    assert spec_from_hf_config(bom) == spec_from_hf_config(raw)
    assert spec_from_hf_config(bom.decode("utf-8")) == spec_from_hf_config(raw.decode("utf-8"))
    plain, marked = tmp_path / "plain.json", tmp_path / "marked.json"
    plain.write_bytes(raw)
    marked.write_bytes(bom)
    skip = {"source", "name"}
    assert (spec_from_hf_config(marked).model_dump(exclude=skip)
            == spec_from_hf_config(plain).model_dump(exclude=skip))


def test_the_llama_fixture_with_a_bom_is_the_llama_preset():
    raw = (FIXTURES / "llama-3.1-8b.json").read_bytes()
    spec = spec_from_hf_config(b"\xef\xbb\xbf" + raw, name="llama-3.1-8b")
    expected = costmodel.preset("llama-3.1-8b")
    assert spec.model_dump(exclude={"source"}) == expected.model_dump(exclude={"source"})


# Booleans ----------------------------------------------------------------------------------------

@SETTINGS
@given(fixture=st.sampled_from(sorted(FIXTURE_CONFIGS)),
       value=st.one_of(st.sampled_from(["false", "False", "FALSE", "0", "no", "off", "", "true"]),
                       st.text(max_size=8), st.integers(), st.none(), st.lists(st.booleans())))
def test_a_non_boolean_tie_word_embeddings_is_an_error_never_tied(fixture, value):
    cfg = {**FIXTURE_CONFIGS[fixture], "tie_word_embeddings": value}
    result = _load(cfg)
    if cfg["model_type"] == "bert":  # BertForMaskedLM always ties; the field is not read
        assert not isinstance(result, ModelSpecError) and result.tied_embeddings
        return
    assert isinstance(result, ModelSpecError), (value, result)
    assert _mentions(str(result), "tie_word_embeddings")


def test_the_string_false_is_never_read_as_tied():
    cfg = {**FIXTURE_CONFIGS["llama-3.1-8b.json"], "tie_word_embeddings": "false"}
    with pytest.raises(ModelSpecError, match=r"tie_word_embeddings.*JSON boolean.*'false'"):
        spec_from_hf_config(cfg)
    assert spec_from_hf_config({**cfg, "tie_word_embeddings": False}).tied_embeddings is False
    assert spec_from_hf_config({**cfg, "tie_word_embeddings": True}).tied_embeddings is True


# ModelSpec sizes ---------------------------------------------------------------------------------

BASE = dict(name="x", n_layers=2, d_model=64, n_heads=4, d_ff=256, vocab_size=100)
MOE = dict(n_experts=4, experts_per_token=2, d_ff_expert=32)
MLA = dict(attention="mla", kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16)


def _base_for(field: str) -> dict:
    if field in ("n_experts", "experts_per_token", "n_shared_experts", "d_ff_expert", "n_dense_layers"):
        return {**BASE, **MOE}
    if field in ("q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
        return {**BASE, **MLA}
    if field == "max_position_embeddings":
        return {**BASE, "position_embedding": "learned", "max_position_embeddings": 128}
    return dict(BASE)


@SETTINGS
@given(field=st.sampled_from(COUNT_FIELDS), value=json_values)
def test_any_value_of_a_size_gives_a_sound_spec_or_names_the_field(field, value):
    try:
        spec = make_spec({**_base_for(field), field: value})
    except ModelSpecError as exc:
        assert _mentions(str(exc), field), (field, value, str(exc))
        return
    assert not isinstance(value, (bool, str))
    lo, hi = count_bounds(field)
    got = getattr(spec, field)
    assert got is None or (isinstance(got, int) and lo <= got <= hi)
    _check_spec(spec)


@pytest.mark.parametrize("field", COUNT_FIELDS)
def test_a_size_above_its_bound_names_the_field_and_the_range(field):
    lo, hi = count_bounds(field)
    with pytest.raises(ModelSpecError, match=rf"{field}: must be an integer from {lo:,} to {hi:,}"):
        make_spec({**_base_for(field), field: hi + 1})


def test_every_size_documents_its_bounds():
    for field in COUNT_FIELDS:
        lo, hi = count_bounds(field)
        description = costmodel.ModelSpec.model_fields[field].description or ""
        assert f"{hi:,}" in description, field


@pytest.mark.parametrize("attention", ["standard", "mla"])
def test_the_largest_allowed_model_has_a_finite_parameter_count(attention):
    fields = dict(
        name="huge", n_layers=count_bounds("n_layers")[1], d_model=count_bounds("d_model")[1],
        n_heads=count_bounds("n_heads")[1], d_ff=count_bounds("d_ff")[1],
        vocab_size=count_bounds("vocab_size")[1], position_embedding="learned",
        max_position_embeddings=count_bounds("max_position_embeddings")[1],
        type_vocab_size=count_bounds("type_vocab_size")[1], qkv_bias=True, attn_out_bias=True,
        mlp_bias=True, n_experts=count_bounds("n_experts")[1],
        experts_per_token=count_bounds("experts_per_token")[1],
        n_shared_experts=count_bounds("n_shared_experts")[1], d_ff_expert=count_bounds("d_ff_expert")[1],
        n_dense_layers=count_bounds("n_layers")[1] - 1, router_bias=True,
    )
    if attention == "mla":
        fields.update(attention="mla", q_lora_rank=count_bounds("q_lora_rank")[1],
                      kv_lora_rank=count_bounds("kv_lora_rank")[1],
                      qk_rope_head_dim=count_bounds("qk_rope_head_dim")[1],
                      qk_nope_head_dim=count_bounds("qk_nope_head_dim")[1],
                      v_head_dim=count_bounds("v_head_dim")[1])
    else:
        fields.update(head_dim=count_bounds("head_dim")[1], n_kv_heads=count_bounds("n_kv_heads")[1])
    spec = make_spec(fields)
    _check_spec(spec)
    assert float(costmodel.parameter_count(spec).total) < 1e30
