"""LoRA adapters for the generator: training (train.py), training examples in the served prompt
format (dataset.py) and serving by vLLM (serving.py).

Training needs the optional extra `train` (peft, accelerate; `qlora` adds bitsandbytes for 4-bit
training on a GPU); it is imported only when used, so serving helpers work without it.

    python -m generation.lora train --base MODEL_PATH --data FILE.jsonl --out ADAPTER_DIR
"""
