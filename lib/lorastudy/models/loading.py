"""Loading a base model (16-bit, or 4-bit and 8-bit with bitsandbytes) and its tokenizer, and
what a study needs to know of any model's chat format (its end tokens)."""

from __future__ import annotations

from ..resources.memory import device
from ..study.schema import ModelConfig, QuantConfig


def torch_dtype(name: str):
    """The torch dtype a params file names (bfloat16, float16, float32); torch is imported here,
    not on import, so the data and report steps do without it."""
    import torch

    return getattr(torch, name)


# The configuration of hub models the study names by default, so `check` can size the plan
# and the benchmarks can build random-weight stand-ins without a network (config.json less
# the tokenizer's token ids).
HUB_CONFIGS = {
    "Qwen/Qwen3-0.6B": dict(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
    ),
}


def load_tokenizer(path: str, model: ModelConfig):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)
    # Batched generation and training pad; a tokenizer without a pad token (Llama's, GPT-2's)
    # pads with its end token, which the attention mask and the -100 labels then ignore.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def end_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a generation: those the model's generation config lists (it may
    list several: Qwen3's <|im_end|> and <|endoftext|>), the tokenizer's end token, and the
    token that closes an assistant's turn, which fine-tuning teaches the model to emit."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    ids = [int(i) for i in configured]
    for token in (tokenizer.eos_token, assistant_turn_end(tokenizer)):
        token_id = tokenizer.convert_tokens_to_ids(token) if token is not None else None
        if token_id is not None and token_id not in ids:
            ids.append(int(token_id))
    return ids


def assistant_turn_end(tokenizer) -> str:
    """The special token the chat template closes an assistant's turn with (<|im_end|> in
    ChatML templates such as Qwen3's and SmolLM2's; <|eot_id|> in Llama 3's). Fine-tuning
    appends it to each answer, so the model learns to end its turn as its template does;
    the tokenizer's end token where the template shows none."""
    marker = "LORASTUDY-ANSWER-MARKER"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "question"}, {"role": "assistant", "content": marker}], tokenize=False
        )
    except Exception:  # no chat template, or one that rejects this conversation
        return tokenizer.eos_token
    after = text.split(marker, 1)[1] if marker in text else ""
    ids = tokenizer(after.lstrip(), add_special_tokens=False).input_ids
    special = set(tokenizer.all_special_ids) | {
        i for i, token in tokenizer.added_tokens_decoder.items() if getattr(token, "special", False)
    }
    if ids and ids[0] in special:
        return tokenizer.convert_ids_to_tokens(ids[0])
    return tokenizer.eos_token


def quantization_config(quant: QuantConfig):
    from transformers import BitsAndBytesConfig

    if quant.bits == 8:
        # LLM.int8: row-wise absmax int8 weights; activations' outlier features (above 6.0, the
        # paper's threshold and bitsandbytes' default) are multiplied in 16-bit.
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(quant.compute_dtype),
        bnb_4bit_quant_storage=quant.storage,
    )


def load_model(path: str, model: ModelConfig, quant: QuantConfig | None = None, sharded: bool = False):
    """The base model: 16-bit (model.dtype) or, with `quant`, bitsandbytes 4-bit or 8-bit."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **load_kwargs(model, quant, sharded))


def load_kwargs(model: ModelConfig, quant: QuantConfig | None, sharded: bool) -> dict:
    """`from_pretrained`'s arguments. On this process's device, unless `sharded` (FSDP): then no
    device map, as accelerate's FSDP expects, so that with its CPU-RAM-efficient loading process 0
    loads the weights on the CPU, the others only their shapes, and FSDP hands each GPU its shard;
    a device map would put the whole model on every GPU."""
    kwargs = dict(
        dtype=torch_dtype(model.dtype),
        use_safetensors=True,
        trust_remote_code=model.trust_remote_code,
        attn_implementation=model.attn_implementation,
        revision=model.revision,
    )
    if not sharded:
        kwargs["device_map"] = device()
    if quant is not None:
        kwargs["quantization_config"] = quantization_config(quant)
    return kwargs


def quantizable_linears(model) -> list[str]:
    """The linear layers a bitsandbytes quantizer converts when transformers loads `model`
    quantized: every nn.Linear except the ones transformers keeps in full precision (the output
    head, tied weights, the last module). Works on a model on the meta device."""
    import torch
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = get_keys_to_not_convert(model)
    return [
        name
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and should_convert_module(name, skip)
    ]


def upcast_like_kbit_preparation(model) -> list[str]:
    """A 16-bit base given the precision peft's k-bit preparation gives a quantized one, without
    quantizing it: every weight the quantizer would leave unquantized (embeddings, norms, the
    head) in fp32, and each linear layer it would convert computing in its own dtype and
    returning the dtype of its input, as bitsandbytes' Linear4bit does (`.to(inp_dtype)`), so the
    residual stream is fp32 as it is in QLoRA. Returns the names of the upcast parameters."""
    import torch

    linears = set(quantizable_linears(model))
    upcast = []
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[0] not in linears and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.to(torch.float32)
            upcast.append(name)

    # A linear layer's bias stays in its dtype: Linear4bit casts its bias to the compute dtype
    # before using it, so either way the bias is added in the layer's own precision.
    def cast_in(module, args):
        module.lorastudy_input_dtype = args[0].dtype
        return (args[0].to(module.weight.dtype), *args[1:])

    def cast_out(module, args, output):
        return output.to(module.lorastudy_input_dtype)

    for name, module in model.named_modules():
        if name in linears:
            module.register_forward_pre_hook(cast_in)
            module.register_forward_hook(cast_out)
    return upcast
