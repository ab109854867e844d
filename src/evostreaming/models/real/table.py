"""The released configurations behind ``real:<checkpoint>`` twins: one small table, with sources.

Each entry gives the values of the checkpoint's ``config.json`` that shape compute and memory
(layer counts and widths, heads, vocabulary, vision tower, special-token ids) and the published
parameter count, which ``tests/test_real_twins.py`` checks the built model against. Values not
listed take transformers' defaults for the model type, which match these releases (activation,
norm epsilon, initializer range). Sources are the checkpoints' own ``config.json`` on the Hugging
Face hub; the column ``checked`` says where we could compare against a public copy offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HUB = "https://huggingface.co/{}/blob/main/config.json"


@dataclass(frozen=True)
class RealCheckpoint:
    checkpoint: str  # hub id
    family: str  # a registered family (models/families/<family>.py)
    model_type: str
    text: dict
    vision: dict
    top: dict  # token ids and connector settings at the top level of config.json
    tokens: str  # the tokenizer layout (models/real/vocab.py LAYOUTS)
    params_b: float  # published parameter count, billions (the hub page's "Model size")
    processor: dict = field(default_factory=dict)  # processor settings that differ from transformers' defaults
    checked: str = ""  # a public copy of the released config these values were compared with

    @property
    def source(self) -> str:
        return HUB.format(self.checkpoint)


def _qwen2_text(hidden, inter, layers, heads, kv, vocab, tie, max_pos=32768) -> dict:
    return dict(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=max_pos,
        rms_norm_eps=1e-6,
        hidden_act="silu",
    )


def _qwen3_text(hidden, inter, layers, heads, kv, vocab, tie, max_pos) -> dict:
    return dict(_qwen2_text(hidden, inter, layers, heads, kv, vocab, tie, max_pos), head_dim=128)


QWEN_IDS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
QWEN2_VISION = dict(depth=32, embed_dim=1280, mlp_ratio=4, num_heads=16, patch_size=14, spatial_merge_size=2)
QWEN2_5_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    patch_size=14,
    spatial_merge_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2,
)
QWEN3_VISION_S = dict(depth=24, hidden_size=1024, intermediate_size=4096, deepstack_visual_indexes=[5, 11, 17])
QWEN3_VISION_L = dict(depth=27, hidden_size=1152, intermediate_size=4304, deepstack_visual_indexes=[8, 16, 24])
QWEN3_VISION = dict(
    num_heads=16,
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
    num_position_embeddings=2304,
    hidden_act="gelu_pytorch_tanh",
)
QWEN2_ROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}
QWEN3_ROPE = {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True}

INTERNVIT_300M = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    image_size=[448, 448],
    patch_size=[14, 14],
    use_qk_norm=False,
    norm_type="layer_norm",
    layer_scale_init_value=0.1,
    attention_bias=True,
    use_absolute_position_embeddings=True,
)
INTERNVL_TOP = dict(
    image_token_id=151671,
    downsample_ratio=0.5,
    image_seq_length=256,
    projector_hidden_act="gelu",
    vision_feature_layer=-1,
    vision_feature_select_strategy="default",
)

SIGLIP_SO400M = dict(
    model_type="siglip_vision_model",
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=26,
    num_attention_heads=16,
    image_size=384,
    patch_size=14,
    vision_use_head=False,  # the OneVision tower has no pooling head (about 15 M parameters)
)
# LLaVA-OneVision's anyres grid: every (h, w) in multiples of 384 up to 6 x 6 tiles.
ONEVISION_PINPOINTS = [[384 * h, 384 * w] for h in range(1, 7) for w in range(1, 7)]
ONEVISION_TOP = dict(
    image_token_index=151646,
    video_token_index=151647,
    vision_feature_layer=-1,
    vision_feature_select_strategy="full",
    vision_aspect_ratio="anyres_max_9",
    image_grid_pinpoints=ONEVISION_PINPOINTS,
)
ONEVISION_PROCESSOR = dict(
    num_image_tokens=729, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9"
)


def _llama_text(hidden, inter, layers, heads, kv, rope_theta, max_pos, head_dim=64) -> dict:
    return dict(
        model_type="llama",
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        vocab_size=49280,
        max_position_embeddings=max_pos,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
    )


REAL_CHECKPOINTS: dict[str, RealCheckpoint] = {
    c.checkpoint: c
    for c in [
        RealCheckpoint(
            "Qwen/Qwen2-VL-2B-Instruct",
            "qwen2_vl",
            "qwen2_vl",
            dict(_qwen2_text(1536, 8960, 28, 12, 2, 151936, True), rope_parameters=QWEN2_ROPE),
            dict(QWEN2_VISION, hidden_size=1536),
            dict(QWEN_IDS, tie_word_embeddings=True),
            "qwen2",
            2.21,
        ),
        RealCheckpoint(
            "Qwen/Qwen2-VL-7B-Instruct",
            "qwen2_vl",
            "qwen2_vl",
            dict(_qwen2_text(3584, 18944, 28, 28, 4, 152064, False), rope_parameters=QWEN2_ROPE),
            dict(QWEN2_VISION, hidden_size=3584),
            dict(QWEN_IDS, tie_word_embeddings=False),
            "qwen2",
            8.29,
        ),
        RealCheckpoint(
            "Qwen/Qwen2.5-VL-3B-Instruct",
            "qwen2_5_vl",
            "qwen2_5_vl",
            dict(_qwen2_text(2048, 11008, 36, 16, 2, 151936, True, 128000), rope_parameters=QWEN2_ROPE),
            dict(QWEN2_5_VISION, out_hidden_size=2048),
            dict(QWEN_IDS, tie_word_embeddings=True),
            "qwen2",
            3.75,
        ),
        RealCheckpoint(
            "Qwen/Qwen2.5-VL-7B-Instruct",
            "qwen2_5_vl",
            "qwen2_5_vl",
            dict(_qwen2_text(3584, 18944, 28, 28, 4, 152064, False, 128000), rope_parameters=QWEN2_ROPE),
            dict(QWEN2_5_VISION, out_hidden_size=3584),
            dict(QWEN_IDS, tie_word_embeddings=False),
            "qwen2",
            8.29,
            checked="a verbatim config.json copy in a public training repository (text, vision and ids)",
        ),
        RealCheckpoint(
            "Qwen/Qwen3-VL-2B-Instruct",
            "qwen3_vl",
            "qwen3_vl",
            dict(_qwen3_text(2048, 6144, 28, 16, 8, 151936, True, 262144), rope_parameters=QWEN3_ROPE),
            dict(QWEN3_VISION, **QWEN3_VISION_S, out_hidden_size=2048),
            dict(QWEN_IDS, tie_word_embeddings=True),
            "qwen3",
            2.13,
            processor=dict(patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        ),
        RealCheckpoint(
            "Qwen/Qwen3-VL-8B-Instruct",
            "qwen3_vl",
            "qwen3_vl",
            dict(_qwen3_text(4096, 12288, 36, 32, 8, 151936, False, 262144), rope_parameters=QWEN3_ROPE),
            dict(QWEN3_VISION, **QWEN3_VISION_L, out_hidden_size=4096),
            dict(QWEN_IDS, tie_word_embeddings=False),
            "qwen3",
            8.77,
            processor=dict(patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
            checked="vision tower and deepstack layers as quoted in public reimplementations",
        ),
        RealCheckpoint(
            "OpenGVLab/InternVL3_5-1B-HF",
            "internvl",
            "internvl",
            dict(
                _qwen3_text(1024, 3072, 28, 16, 8, 151936, False, 40960),
                model_type="qwen3",
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            ),
            INTERNVIT_300M,
            dict(INTERNVL_TOP, tie_word_embeddings=False),  # unlike Qwen3-0.6B: lm_head is its own tensor
            "internvl",
            1.06,
            processor=dict(image_seq_length=256),
        ),
        RealCheckpoint(
            "OpenGVLab/InternVL3_5-8B-HF",
            "internvl",
            "internvl",
            dict(
                _qwen3_text(4096, 12288, 36, 32, 8, 151936, False, 40960),
                model_type="qwen3",
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            ),
            INTERNVIT_300M,
            dict(INTERNVL_TOP, tie_word_embeddings=False),
            "internvl",
            8.53,
            processor=dict(image_seq_length=256),
            checked="image_token_id 151671 and the InternViT/Qwen3 layout from a public -HF config copy",
        ),
        RealCheckpoint(
            "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
            "llava_onevision",
            "llava_onevision",
            dict(
                _qwen2_text(896, 4864, 24, 14, 2, 152000, True),
                model_type="qwen2",
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            ),
            SIGLIP_SO400M,
            dict(ONEVISION_TOP, tie_word_embeddings=True),
            "onevision",
            0.894,
            processor=ONEVISION_PROCESSOR,
            checked="image/video token ids 151646/151647 as listed for this checkpoint in vLLM's tooling",
        ),
        RealCheckpoint(
            "llava-hf/llava-onevision-qwen2-7b-ov-hf",
            "llava_onevision",
            "llava_onevision",
            dict(
                _qwen2_text(3584, 18944, 28, 28, 4, 152128, False, 32768),
                model_type="qwen2",
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            ),
            SIGLIP_SO400M,
            dict(ONEVISION_TOP, tie_word_embeddings=False),
            "onevision",
            8.03,
            processor=ONEVISION_PROCESSOR,
            checked="text tower and pinpoints against lmms-lab/llava-onevision-qwen2-7b-ov's config as quoted publicly",
        ),
        RealCheckpoint(
            "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
            "smolvlm",
            "smolvlm",
            _llama_text(576, 1536, 30, 9, 3, 100000.0, 8192),
            dict(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                image_size=512,
                patch_size=16,
            ),
            dict(image_token_id=49190, scale_factor=4, tie_word_embeddings=False),
            "smolvlm",
            0.256,
            processor=dict(image_seq_len=64, longest_edge=512),
            checked="the nested SmolVLM2-256M config quoted in a public Rust loader's tests",
        ),
        RealCheckpoint(
            "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
            "smolvlm",
            "smolvlm",
            _llama_text(2048, 8192, 24, 32, 32, 130000.0, 16384),
            dict(
                hidden_size=1152,
                intermediate_size=4304,
                num_hidden_layers=27,
                num_attention_heads=16,
                image_size=384,
                patch_size=14,
            ),
            dict(image_token_id=49190, scale_factor=3, tie_word_embeddings=False),
            "smolvlm",
            2.25,
            processor=dict(image_seq_len=81, longest_edge=384),
        ),
    ]
}


def real_checkpoint(name: str) -> RealCheckpoint:
    """The table's entry for a hub id (case-insensitive)."""
    for key, entry in REAL_CHECKPOINTS.items():
        if key.lower() == name.lower():
            return entry
    known = "\n  ".join(REAL_CHECKPOINTS)
    raise KeyError(f"no real-size twin for {name!r}; the table (models/real/table.py) has:\n  {known}")
