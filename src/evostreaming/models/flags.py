"""The help of the model flags, written once and importable without torch: the CLI's shared options and
the configs whose fields are flags (``eval run``'s ``EvalRunConfig``) use the same words."""

HELP = {
    "device": "auto (CUDA when present), cpu, cuda or cuda:N",
    "dtype": "auto (bfloat16 on a GPU, float32 on the CPU), float32, bfloat16, float16",
    "attn": "auto (the fastest installed), sdpa, flash_attention_2 or eager",
    "device_map": "auto: spread a model larger than one GPU over all of them (accelerate)",
}
MODEL_HELP = "model spec: pocket, pocket:DIR, tiny:<family>, a local folder or a hub id"
