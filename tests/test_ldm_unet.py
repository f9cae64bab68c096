"""CompVis' UNetModel and BERTEmbedder in Flax (jaxgen/models/ldm_unet.py, ldm_text.py)
and the reader of their state dicts (jaxgen/weights/ldm.py): the paper parameter counts,
parity with CompVis' own PyTorch code on seeded random weights
(tests/fixtures/make_ldm_unet_fixture.py), the initialisation, the inputs."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from conftest import load_module
from jaxgen.models import ldm_text, ldm_unet
from jaxgen.weights import ldm

rw = load_module("tests/fixtures/ldm_random_weights.py")


def count(shapes) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


@pytest.mark.parametrize("name, expected", [
    ("CELEBAHQ_VQ4", 274_056_163), ("CIN256_V2", 400_920_579),
    ("TXT2IMG_1P4B", 872_300_484), ("SD_V1", 859_520_964)])
def test_paper_unet_parameter_counts(name, expected):
  assert count(ldm_unet.param_shapes(getattr(ldm_unet, name))) == expected


def test_paper_text_encoder_parameter_count():
  config = ldm_text.TXT2IMG_1P4B
  assert count(ldm_text.param_shapes(config)) == 581_994_042
  without_head = dataclasses.replace(config, logits_head=False)
  assert count(ldm_text.param_shapes(without_head)) == 581_994_042 - (1280 + 1) * 30522


@pytest.fixture(scope="module")
def reference():
  with np.load(rw.PARITY_FILE) as f:
    return dict(f), rw.layouts()


@pytest.mark.parametrize("case", list(rw.UNET_CASES))
def test_unet_matches_compvis(reference, case):
  outputs, layouts = reference
  config = ldm_unet.UNetConfig(**rw.unet_config_kwargs(case))
  variables = ldm.unet_params(rw.random_state_dict(layouts[case], rw.seed(case)), config)
  inputs = rw.unet_inputs(case)
  out = ldm_unet.UNetModel(config).apply(variables, inputs["x"], inputs["timesteps"],
                                         inputs.get("context"), inputs.get("y"))
  np.testing.assert_allclose(out, outputs[case], rtol=0, atol=2e-5)


def test_text_encoder_matches_compvis(reference):
  outputs, layouts = reference
  config = ldm_text.TextEncoderConfig(**rw.TEXT_CASE)
  variables = ldm.text_encoder_params(
      rw.random_state_dict(layouts["text"], rw.seed("text")), config)
  inputs, model = rw.text_inputs(), ldm_text.TextEncoder(config)
  got = {"text_embeddings": model.apply(variables, inputs["tokens"]),
         "text_embeddings_masked": model.apply(variables, inputs["tokens"], inputs["mask"]),
         "text_logits": model.apply(variables, inputs["tokens"], return_embeddings=False)}
  for name, value in got.items():
    np.testing.assert_allclose(value, outputs[name], rtol=0, atol=2e-5, err_msg=name)
  # Without its logits head the encoder reads the same file, to_logits skipped.
  config = dataclasses.replace(config, logits_head=False)
  variables = ldm.text_encoder_params(
      rw.random_state_dict(layouts["text"], rw.seed("text")), config)
  np.testing.assert_allclose(ldm_text.TextEncoder(config).apply(variables, inputs["tokens"]),
                             outputs["text_embeddings"], rtol=0, atol=2e-5)


def test_reader_names_what_does_not_fit(reference):
  _, layouts = reference
  config = ldm_unet.UNetConfig(**rw.unet_config_kwargs("crossattn"))
  state = rw.random_state_dict(layouts["crossattn"], 0)
  state = {f"model.diffusion_model.{k}": v for k, v in state.items()}
  state["first_stage_model.encoder.conv_in.weight"] = np.zeros(3)  # outside the prefix
  ldm.unet_params(state, config, prefix="model.diffusion_model.")
  del state["model.diffusion_model.label_emb.weight"]
  state["model.diffusion_model.extra.weight"] = np.zeros(3)
  state["model.diffusion_model.out.2.weight"] = np.zeros((4, 32, 1, 1))
  with pytest.raises(ValueError) as e:
    ldm.unet_params(state, config, prefix="model.diffusion_model.")
  message = str(e.value)
  assert "missing keys: model.diffusion_model.label_emb.weight" in message
  assert "unexpected keys: model.diffusion_model.extra.weight" in message
  assert "model.diffusion_model.out.2.weight is (4, 32, 1, 1), the model needs (4, 32, 3, 3)" in message


def test_torch_keys_follow_one_rule():
  assert ldm.torch_key(("input_blocks_3_1", "transformer_blocks_0", "attn2", "to_out_0",
                        "kernel")) == "input_blocks.3.1.transformer_blocks.0.attn2.to_out.0.weight"
  assert ldm.torch_key(("out_0", "scale")) == "out.0.weight"
  assert ldm.torch_key(("attn_layers", "layers_12_1", "net_0_0", "bias")) == \
      "attn_layers.layers.12.1.net.0.0.bias"
  assert ldm.torch_key(("pos_emb", "emb", "embedding")) == "pos_emb.emb.weight"


SMALL = ldm_unet.UNetConfig(in_channels=2, out_channels=3, model_channels=32,
                            num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 2),
                            num_heads=2, use_spatial_transformer=True, context_dim=8,
                            num_classes=4)


def small_inputs(seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(2, 4, 4, 2)).astype(np.float32), np.array([1.0, 500.0]),
          rng.normal(size=(2, 3, 8)).astype(np.float32), np.array([0, 3]))


@pytest.fixture(scope="module")
def small_init():
  """SMALL's initial variables, and the same shifted off zero everywhere (so that
  proj_out and out_2 let the attention reach the output)."""
  x, t, context, y = small_inputs()
  variables = ldm_unet.UNetModel(SMALL).init(jax.random.key(0), x, t, context, y)
  return variables, jax.tree.map(lambda v: v + 0.05, variables)


def test_init_is_pytorchs_with_compvis_zero_layers(small_init):
  params = small_init[0]["params"]
  flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}
  norms = {"in_layers_0", "out_layers_0", "out_0", "norm", "norm1", "norm2", "norm3"}
  zero_layers = ("out_layers_3/", "proj_out/", "out_2/")  # CompVis' zero_module
  expected = {k for k in flat if any(z in k for z in zero_layers)
              or (k.split("/")[-2] in norms and k.endswith("/bias"))
              or k == "output_blocks_1_2/conv/bias"}  # layers.Upsample: zero biases
  assert {k for k, v in flat.items() if not v.any()} == expected
  assert "middle_block_1/proj_out/kernel" in expected
  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, N(0, 1) embeddings.
  kernel = flat["input_blocks_3_0/in_layers_2/kernel"]  # 3x3 conv 32 -> 64
  bias = flat["input_blocks_3_0/in_layers_2/bias"]
  bound = 1 / np.sqrt(9 * 32)
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
  assert np.abs(bias).max() <= bound and bias.std() > 0.4 * bound
  assert 0.8 < flat["label_emb/embedding"].std() < 1.2


def test_context_mask_hides_tokens(small_init):
  x, t, context, y = small_inputs()
  model, variables = ldm_unet.UNetModel(SMALL), small_init[1]
  mask = np.array([[True, True, False], [True, False, False]])
  out = model.apply(variables, x, t, context, y, mask)
  other = context.copy()
  other[~mask] = 7.0
  np.testing.assert_allclose(model.apply(variables, x, t, other, y, mask), out, atol=1e-6)
  assert np.abs(model.apply(variables, x, t, other, y) - out).max() > 1e-3
  np.testing.assert_allclose(model.apply(variables, x, t, context, y, np.ones((2, 3), bool)),
                             model.apply(variables, x, t, context, y), atol=1e-6)


def test_checkpointing_and_dropout(small_init):
  x, t, context, y = small_inputs()
  config, variables = dataclasses.replace(SMALL, dropout=0.5), small_init[1]
  rngs = {"dropout": jax.random.key(1)}
  outs = [ldm_unet.UNetModel(c).apply(variables, x, t, context, y, train=True, rngs=rngs)
          for c in (config, dataclasses.replace(config, use_checkpoint=True))]
  np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)
  assert np.abs(outs[0] - ldm_unet.UNetModel(config).apply(variables, x, t, context, y)
                ).max() > 1e-3


def test_bad_inputs_and_configs():
  x, t, context, y = small_inputs()
  model = ldm_unet.UNetModel(SMALL)
  with pytest.raises(ValueError, match="context of shape \\(N, L, context_dim=8\\)"):
    model.init(jax.random.key(0), x, t, np.zeros((2, 3, 5), np.float32), y)
  with pytest.raises(ValueError, match="context_dim=8"):
    model.init(jax.random.key(0), x, t, None, y)
  with pytest.raises(ValueError, match="labels y"):
    model.init(jax.random.key(0), x, t, context)
  with pytest.raises(ValueError, match="not divisible"):
    model.init(jax.random.key(0), x[:, :3], t, context, y)
  with pytest.raises(ValueError, match="needs context_dim"):
    dataclasses.replace(SMALL, context_dim=None)
  with pytest.raises(ValueError, match="use_spatial_transformer"):
    dataclasses.replace(SMALL, use_spatial_transformer=False)
  with pytest.raises(ValueError, match="num_heads or num_head_channels"):
    dataclasses.replace(SMALL, num_heads=-1)
  with pytest.raises(ValueError, match="GroupNorm"):
    dataclasses.replace(SMALL, model_channels=48)
  with pytest.raises(ValueError, match="heads do not divide"):
    dataclasses.replace(SMALL, num_heads=3)
  text = ldm_text.TextEncoder(ldm_text.TextEncoderConfig(n_embed=16, n_layer=1, vocab_size=9,
                                                         max_seq_len=4))
  with pytest.raises(ValueError, match="max_seq_len=4"):
    text.init(jax.random.key(0), jnp.zeros((1, 5), jnp.int32))
