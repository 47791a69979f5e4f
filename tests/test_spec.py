"""ModelSpec validation, presets and Hugging Face config import."""

import json

import pytest

from costmodel import ModelSpec, ModelSpecError, preset, presets, spec_from_hf_config
from costmodel.specs.spec import HF_MODEL_TYPES, make_spec

REQUIRED_PRESETS = {
    "gpt2", "gpt3-175b", "bert-base", "bert-large", "llama-2-7b", "llama-2-13b", "llama-2-70b",
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b", "mixtral-8x7b",
    "mixtral-8x22b", "qwen2.5-7b", "qwen2.5-72b", "deepseek-v3",
}


def test_required_presets_ship_under_exact_names():
    assert REQUIRED_PRESETS <= set(presets())


def test_every_preset_names_its_source():
    for name, spec in presets().items():
        assert spec.source, name


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ModelSpecError, match="llama-3.1-8b"):
        preset("llama-3.1-8")


BASE = dict(name="x", n_layers=2, d_model=64, n_heads=4, d_ff=256, vocab_size=100)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"d_model": 65}, "d_model"),
        ({"n_kv_heads": 3}, "n_kv_heads"),
        ({"n_kv_heads": 8}, "n_kv_heads"),
        ({"n_layers": -1}, "n_layers"),
        ({"d_ff": 0}, "d_ff"),
        ({"n_experts": 4, "experts_per_token": 5, "d_ff_expert": 32}, "experts_per_token"),
        ({"n_experts": 4, "experts_per_token": 1}, "d_ff_expert"),
        ({"experts_per_token": 2}, "experts_per_token"),
        ({"position_embedding": "learned"}, "max_position_embeddings"),
        ({"attention": "mla"}, "kv_lora_rank"),
        ({"kv_lora_rank": 16}, "kv_lora_rank"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"mlp_activation": "tanh"}, "mlp_activation"),
    ],
)
def test_invalid_specs_name_the_field(changes, field):
    with pytest.raises(ModelSpecError, match=field):
        make_spec({**BASE, **changes})


def test_head_dim_may_differ_from_d_model_over_heads():
    spec = ModelSpec(**{**BASE, "d_model": 60, "head_dim": 32})
    assert spec.qk_head_dim == 32


def test_spec_is_frozen():
    from pydantic import ValidationError

    spec = preset("gpt2")
    with pytest.raises(ValidationError, match="frozen"):
        spec.n_layers = 3  # type: ignore[misc]


HF_TO_PRESET = {
    "llama-3.1-8b.json": "llama-3.1-8b",
    "llama-2-70b.json": "llama-2-70b",
    "mistral-7b.json": "mistral-7b",
    "mixtral-8x7b.json": "mixtral-8x7b",
    "qwen2.5-7b.json": "qwen2.5-7b",
    "gpt2.json": "gpt2",
    "bert-base.json": "bert-base",
    "deepseek-v3.json": "deepseek-v3",
}


@pytest.mark.parametrize("filename, name", sorted(HF_TO_PRESET.items()))
def test_hf_config_gives_the_preset(hf_config_dir, filename, name):
    imported = spec_from_hf_config(hf_config_dir / filename, name=name)
    expected = preset(name)
    skip = {"source"}
    assert imported.model_dump(exclude=skip) == expected.model_dump(exclude=skip)


def test_hf_import_covers_the_required_model_types():
    assert {"llama", "mistral", "mixtral", "qwen2", "gpt2", "bert", "deepseek_v3"} <= set(HF_MODEL_TYPES)


def test_unsupported_model_type_lists_supported(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "mamba", "hidden_size": 8}))
    with pytest.raises(ModelSpecError) as err:
        spec_from_hf_config(path)
    message = str(err.value)
    assert "mamba" in message
    for supported in ("llama", "mixtral", "deepseek_v3", "bert", "gpt2", "qwen2", "mistral"):
        assert supported in message


def test_invalid_json_is_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        spec_from_hf_config(path)


def test_missing_field_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(ModelSpecError, match="num_hidden_layers"):
        spec_from_hf_config(path)


def test_impossible_dimensions_in_a_config_name_the_field(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 100, "num_attention_heads": 3,
           "num_hidden_layers": 2, "intermediate_size": 10, "vocab_size": 10}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelSpecError, match="d_model"):
        spec_from_hf_config(path)


# Typed reading of config.json values (never by truthiness) -------------------------------------

def _llama(hf_config_dir, **changes):
    cfg = json.loads((hf_config_dir / "llama-3.1-8b.json").read_text())
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        ("tie_word_embeddings", "false", r"'tie_word_embeddings' must be a JSON boolean .* 'false'"),
        ("tie_word_embeddings", 0, r"'tie_word_embeddings' must be a JSON boolean"),
        ("attention_bias", "true", r"'attention_bias' must be a JSON boolean"),
        ("mlp_bias", None, r"'mlp_bias' must be a JSON boolean"),
        ("hidden_size", "4096", r"'hidden_size' must be an integer from 1 to 1,048,576, got the string"),
        ("hidden_size", 4096.5, r"'hidden_size' must be an integer .* got 4096.5"),
        ("hidden_size", float("nan"), r"'hidden_size' must be an integer .* got nan"),
        ("hidden_size", True, r"'hidden_size' must be an integer .* got the boolean True"),
        ("num_key_value_heads", 0, r"'num_key_value_heads' must be an integer from 1"),
        ("num_key_value_heads", -8, r"'num_key_value_heads' must be an integer from 1"),
        ("num_key_value_heads", 3, r"'num_key_value_heads' must be .* divides num_attention_heads \(32\)"),
        ("num_key_value_heads", [8], r"'num_key_value_heads' .* got the list \[8\]"),
        ("num_attention_heads", {"a": 1}, r"'num_attention_heads' .* got the object"),
        ("vocab_size", 10**400, r"'vocab_size' must be an integer from 1 to 10,000,000"),
        ("num_hidden_layers", 10_001, r"'num_hidden_layers' must be an integer from 1 to 10,000"),
        ("head_dim", 0, r"'head_dim' must be an integer from 1 to 65,536 or null"),
        ("hidden_act", ["silu"], r"'hidden_act' must be one of 'silu', 'swish'"),
        ("model_type", ["llama"], r"unsupported model_type \['llama'\]"),
        ("_name_or_path", 7, r"'_name_or_path' must be a string or null"),
    ],
)
def test_config_values_are_read_by_type(hf_config_dir, field, value, pattern):
    with pytest.raises(ModelSpecError, match=pattern):
        spec_from_hf_config(_llama(hf_config_dir, **{field: value}))


def test_integral_floats_and_null_defaults_are_accepted(hf_config_dir):
    reference = spec_from_hf_config(_llama(hf_config_dir))
    assert spec_from_hf_config(_llama(hf_config_dir, hidden_size=4096.0, vocab_size=128256.0)) == reference
    assert spec_from_hf_config(_llama(hf_config_dir, head_dim=None)) == reference
    assert spec_from_hf_config(_llama(hf_config_dir, head_dim=128)) == reference
    # num_key_value_heads absent or null: multi-head attention (= num_attention_heads).
    cfg = _llama(hf_config_dir)
    del cfg["num_key_value_heads"]
    assert spec_from_hf_config(cfg).n_kv_heads == 32
    assert spec_from_hf_config(_llama(hf_config_dir, num_key_value_heads=None)).n_kv_heads == 32
    assert spec_from_hf_config(_llama(hf_config_dir, tie_word_embeddings=True)).tied_embeddings


def test_cross_field_errors_name_the_config_fields(hf_config_dir):
    with pytest.raises(ModelSpecError, match=r"d_model <- hidden_size.*n_heads <- num_attention_heads"):
        spec_from_hf_config(_llama(hf_config_dir, hidden_size=4095))
    mixtral = json.loads((hf_config_dir / "mixtral-8x7b.json").read_text())
    with pytest.raises(ModelSpecError, match=r"experts_per_token <- num_experts_per_tok"):
        spec_from_hf_config({**mixtral, "num_experts_per_tok": 9})


def test_a_bom_is_accepted_and_non_utf8_names_the_file(hf_config_dir, tmp_path):
    raw = (hf_config_dir / "llama-3.1-8b.json").read_bytes()
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + raw)
    assert spec_from_hf_config(path).n_kv_heads == 8
    path.write_bytes(raw.replace(b'"silu"', b'"s\xe9lu"'))
    with pytest.raises(ModelSpecError, match=rf"{tmp_path}.*config.json is not UTF-8 text"):
        spec_from_hf_config(path)
    with pytest.raises(ModelSpecError, match="config.json is not UTF-8 text"):
        spec_from_hf_config(b"\xff\xfe{}")


@pytest.mark.parametrize("text", ['{"model_type": ' + "1" * 5000 + "}", "[" * 100_000])
def test_pathological_json_is_a_model_spec_error(text):
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        spec_from_hf_config(text)


# ModelSpec sizes: finite integers with documented upper bounds ----------------------------------

@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"n_layers": 10_001}, r"n_layers: must be an integer from 1 to 10,000, got 10001"),
        ({"d_model": 2**21}, r"d_model: must be an integer from 1 to 1,048,576"),
        ({"vocab_size": 10**400}, r"vocab_size: must be an integer from 1 to 10,000,000, got an integer"),
        ({"n_heads": True}, r"n_heads: must be an integer .* got the boolean True"),
        ({"d_ff": "256"}, r"d_ff: must be an integer .* got the string '256'"),
        ({"d_ff": float("inf")}, r"d_ff: must be an integer .* got inf"),
        ({"n_kv_heads": 0}, r"n_kv_heads: must be an integer from 1 to 65,536 \(or null\)"),
        ({"n_experts": 65_537}, r"n_experts: must be an integer from 0 to 65,536"),
    ],
)
def test_sizes_are_bounded_finite_integers(changes, pattern):
    with pytest.raises(ModelSpecError, match=pattern):
        make_spec({**BASE, **changes})


def test_integral_float_sizes_become_integers():
    spec = make_spec({**BASE, "n_layers": 2.0})
    assert spec.n_layers == 2 and isinstance(spec.n_layers, int)


def test_make_spec_needs_a_mapping():
    with pytest.raises(ModelSpecError, match="expected a mapping"):
        make_spec(["n_layers", 2])  # type: ignore[arg-type]
