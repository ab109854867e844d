"""Training: LoRA SFT (PEFT) on streaming conversations, resumable."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "LoraTrainConfig": "config",
        "train_lora": "lora",
        "load_conversations": "lora",
        "TrainDataError": "lora",
    },
)
