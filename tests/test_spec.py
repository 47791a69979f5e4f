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
