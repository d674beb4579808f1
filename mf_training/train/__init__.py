"""Training: ``mf train --config FILE [key=value ...]`` (pretrain and Modality Forcing post-training).

config_tree.py  YAML ``base:`` composition, dotted overrides, typed dataclass building (InputError)
config.py       TrainConfig and its sections, with the reason beside each default
data.py         Samples -> tensors: source mixing, stream positions, random crops, per-rank shards
datasets.py     configured sources (folders, bags, shared datasets, generated sim: bags) -> pool + validation
distributed.py  torchrun process group, DDP (gloo / NCCL), FSDP2, gradient-sync and reductions
optim.py        AdamW and warmup + cosine schedule
ema.py          EMA of the weights (sharded under FSDP2)
state.py        training-state checkpoints (safetensors + JSON, atomic, keep-last-K) and restore
validation.py   1-step i2d AbsRel / delta1 after scale/shift alignment
logging.py      TensorBoard scalars and depth panels, metrics.jsonl
loop.py         Trainer: the loop, top to bottom
"""
