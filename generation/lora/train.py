"""LoRA adapter training on chat examples in the exact prompt format the server sends.

Each example is {"messages": [system, user, assistant]} as built by generation.prompts
.build_messages plus the reference answer. It is rendered with the base tokenizer's chat template
(the template vLLM applies to /v1/chat/completions), and the loss counts only the assistant's
tokens. With CUDA and bitsandbytes the base model is loaded in 4 bits (QLoRA); otherwise plain
LoRA, on the GPU in bfloat16 or on the CPU in float32. The adapter is saved with peft's
save_pretrained: adapter_config.json and adapter_model.safetensors, which is what vLLM loads.

    result = train(TrainConfig(base="Qwen/Qwen2.5-1.5B-Instruct", data=Path("qa.jsonl"),
                               out=Path("adapters/company-qa")))
    print(result.report())
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .errors import TrainingConfigError, TrainingDataError

# The attention and MLP projections of Llama-style models (Llama, Qwen, Mistral, Gemma): the
# modules vLLM can apply LoRA to. "all-linear" lets peft pick every linear layer but the head.
DEFAULT_TARGET_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
# Used only when the base tokenizer has none; it is saved beside the adapter as
# chat_template.jinja so that vLLM can serve with the same one (--chat-template).
FALLBACK_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
QUANTIZATION_CHOICES = ("auto", "4bit", "none")
IGNORE_INDEX = -100  # label value the loss skips


@dataclass
class TrainConfig:
    """What to train and how.

    base: base model folder or name (loaded with AutoModelForCausalLM; nothing is downloaded
    unless it is a hub name not yet cached). data: JSON lines of {"messages": [...]}. out: the
    adapter folder to write. epochs >= 1; lr: AdamW learning rate; rank / alpha: LoRA rank r and
    scaling alpha (vLLM serves ranks up to its --max-lora-rank); dropout in [0, 1);
    batch_size: examples per forward pass; grad_accum: passes per optimizer step; max_length:
    longest example in tokens (longer ones are skipped, never cut); quantization: "auto" (4-bit
    when CUDA and bitsandbytes are present), "4bit" or "none"; gradient_checkpointing: None for
    on with 4-bit and off otherwise.
    """

    base: str
    data: Path
    out: Path
    epochs: int = 2
    lr: float = 2e-4
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 2048
    warmup_ratio: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    quantization: str = "auto"
    gradient_checkpointing: bool | None = None
    seed: int = 0

    def validate(self) -> None:
        """Raise TrainingConfigError naming the first option that is out of range."""
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.rank >= 1, "--rank must be at least 1"),
            (self.alpha > 0, "--alpha must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.grad_accum >= 1, "--grad-accum must be at least 1"),
            (self.max_length >= 16, "--max-length must be at least 16 tokens"),
            (0 <= self.warmup_ratio < 1, "--warmup-ratio must be in [0, 1)"),
            (bool(self.target_modules), "--target-modules must name at least one module"),
            (self.quantization in QUANTIZATION_CHOICES, "--quantization: auto, 4bit or none"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingConfigError(message + ".")


@dataclass
class EncodedExample:
    """Token ids of one rendered example; labels are IGNORE_INDEX outside the answer."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class TrainResult:
    """Training figures; losses holds the mean loss of every optimizer step."""

    adapter_dir: Path
    examples: int
    skipped: int
    steps: int
    epochs: int
    first_loss: float
    last_loss: float
    seconds: float
    load_seconds: float
    tokens: int
    device: str
    quantized: bool
    fallback_chat_template: bool
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        """The figures as a few human-readable lines."""
        mode = "QLoRA (4-bit)" if self.quantized else "LoRA"
        lines = [
            f"examples       {self.examples} trained, {self.skipped} skipped (too long)",
            f"steps          {self.steps} over {self.epochs} epoch(s), {mode} on {self.device}",
            f"loss           {self.first_loss:.4f} first step -> {self.last_loss:.4f} last step",
            f"time           {self.seconds:.1f} s training (+{self.load_seconds:.1f} s loading)",
            f"throughput     {self.tokens_per_second:,.0f} tokens/s ({self.tokens:,} tokens)",
            f"adapter        {self.adapter_dir}",
        ]
        if self.fallback_chat_template:
            lines.append(
                "chat template  the base tokenizer has none: serve with "
                f"--chat-template {self.adapter_dir / 'chat_template.jinja'}"
            )
        return "\n".join(lines)


# --- Data ---------------------------------------------------------------------------------------


def load_examples(path: Path) -> list[list[dict[str, str]]]:
    """Read {"messages": [...]} lines; each must end with a non-empty assistant message.

    Raises TrainingDataError naming the file and line of the first bad row, or when the file
    holds no example.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise TrainingDataError(f"Cannot read the training data {path}: {error.strerror}.")
    examples = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            examples.append(_parse_row(line, f"{path}, line {number}"))
    if not examples:
        raise TrainingDataError(f"{path} holds no training example.")
    return examples


def _parse_row(line: str, where: str) -> list[dict[str, str]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise TrainingDataError(f"{where} is not JSON: {error.msg}.")
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise TrainingDataError(f'{where}: expected {{"messages": [..., assistant message]}}.')
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise TrainingDataError(f"{where}: every message needs a role and a text content.")
        if message.get("role") not in ("system", "user", "assistant"):
            raise TrainingDataError(f"{where}: unknown role {message.get('role')!r}.")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise TrainingDataError(f"{where}: the last message must be the assistant's answer.")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give the tokenizer FALLBACK_CHAT_TEMPLATE if it has no chat template; True if it did."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return True


def encode_example(
    tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int
) -> EncodedExample | None:
    """Render messages with the chat template and label only the final assistant turn.

    The prompt is rendered exactly as the server renders a request (earlier messages plus the
    generation prompt) and tokenized as it does (no extra special tokens); the answer is what
    the template appends after it, up to and including its end-of-turn marker. Returns None when
    the example is longer than max_length tokens.
    """
    prompt = tokenizer.apply_chat_template(
        list(messages[:-1]), tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if full.startswith(prompt):
        completion = full[len(prompt) :]
    else:  # templates that rewrite earlier turns once an answer follows
        completion = messages[-1]["content"] + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not completion_ids or len(prompt_ids) + len(completion_ids) > max_length:
        return None
    return EncodedExample(
        input_ids=prompt_ids + completion_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    )


def make_batches(
    examples: Sequence[EncodedExample], batch_size: int, pad_id: int, rng: random.Random
) -> list[dict[str, torch.Tensor]]:
    """Shuffle and pad examples on the right into batches of input_ids, attention_mask, labels."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        width = max(len(e.input_ids) for e in chunk)
        ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in chunk]
        mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in chunk]
        labels = [e.labels + [IGNORE_INDEX] * (width - len(e.labels)) for e in chunk]
        batches.append(
            {
                "input_ids": torch.tensor(ids),
                "attention_mask": torch.tensor(mask),
                "labels": torch.tensor(labels),
            }
        )
    return batches


# --- Model --------------------------------------------------------------------------------------


def use_4bit(quantization: str) -> bool:
    """Whether to load the base model in 4 bits: asked for, or "auto" with CUDA + bitsandbytes."""
    available = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    if quantization == "4bit" and not available:
        raise TrainingConfigError(
            "4-bit training needs a CUDA GPU and bitsandbytes (pip install '.[qlora]')."
        )
    return quantization == "4bit" or (quantization == "auto" and available)


def load_base_model(config: TrainConfig, quantized: bool) -> tuple[Any, Any]:
    """The tokenizer and the LoRA-wrapped model, ready to train."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.base)
        model = AutoModelForCausalLM.from_pretrained(config.base, **_load_options(quantized))
    except (OSError, ValueError) as error:
        raise TrainingConfigError(f"Cannot load the base model {config.base}: {error}")
    if torch.cuda.is_available() and not quantized:
        model.to("cuda")  # type: ignore[arg-type]
    return tokenizer, _add_lora(model, config, quantized)


def _load_options(quantized: bool) -> dict[str, Any]:
    if quantized:
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            ),
            "dtype": compute,
            "device_map": {"": 0},
        }
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return {"dtype": torch.bfloat16}
    return {"dtype": torch.float32}


def _add_lora(model: Any, config: TrainConfig, quantized: bool) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    checkpointing = config.gradient_checkpointing
    if checkpointing is None:
        checkpointing = quantized
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    targets = config.target_modules
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        # vLLM refuses adapters with modules_to_save, DoRA or trained biases.
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise TrainingConfigError(f"Cannot add LoRA to {config.base}: {error}")


# --- Training -----------------------------------------------------------------------------------


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train a LoRA adapter as config says and save it to config.out.

    progress shows a tqdm bar with the running loss. Returns the training figures. Raises
    TrainingDataError for a bad or empty data file (or when every example is too long) and
    TrainingConfigError for bad options or a base model that cannot be loaded.
    """
    config.validate()
    rows = load_examples(config.data)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    quantized = use_4bit(config.quantization)
    tokenizer, model = load_base_model(config, quantized)
    fallback = ensure_chat_template(tokenizer)
    encoded = [encode_example(tokenizer, messages, config.max_length) for messages in rows]
    examples = [e for e in encoded if e is not None]
    if not examples:
        raise TrainingDataError(
            f"All {len(rows)} examples are longer than --max-length {config.max_length} tokens."
        )
    load_seconds = time.perf_counter() - started
    losses, tokens, seconds = _run_epochs(model, tokenizer, examples, config, progress)
    _save(model, tokenizer, config, fallback)
    result = TrainResult(
        adapter_dir=Path(config.out),
        examples=len(examples),
        skipped=len(rows) - len(examples),
        steps=len(losses),
        epochs=config.epochs,
        first_loss=losses[0],
        last_loss=losses[-1],
        seconds=seconds,
        load_seconds=load_seconds,
        tokens=tokens,
        device=str(next(model.parameters()).device),
        quantized=quantized,
        fallback_chat_template=fallback,
        losses=losses,
    )
    _write_summary(result, config)
    return result


def _run_epochs(
    model: Any,
    tokenizer: Any,
    examples: list[EncodedExample],
    config: TrainConfig,
    progress: bool,
) -> tuple[list[float], int, float]:
    """The training loop; returns per-step losses, tokens processed and seconds taken."""
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(config.seed)
    pad_id = _pad_id(tokenizer)
    per_epoch = math.ceil(math.ceil(len(examples) / config.batch_size) / config.grad_accum)
    total = per_epoch * config.epochs
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=0.0)
    warmup = math.ceil(total * config.warmup_ratio)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, total)
    device = next(model.parameters()).device
    model.train()
    losses: list[float] = []
    tokens = 0
    started = time.perf_counter()
    with tqdm(total=total, unit="step", disable=not progress, dynamic_ncols=True) as bar:
        for _epoch in range(config.epochs):
            batches = make_batches(examples, config.batch_size, pad_id, rng)
            for start in range(0, len(batches), config.grad_accum):
                group = batches[start : start + config.grad_accum]
                loss = _step(model, group, device, parameters)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss)
                tokens += sum(int(b["attention_mask"].sum()) for b in group)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
    return losses, tokens, time.perf_counter() - started


def _step(model: Any, group: list[dict[str, torch.Tensor]], device: Any, parameters: list) -> float:
    """Forward and backward over a group of batches (gradient accumulation); the mean loss."""
    total = 0.0
    for batch in group:
        output = model(**{key: value.to(device) for key, value in batch.items()})
        (output.loss / len(group)).backward()
        total += float(output.loss.detach())
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    return total / len(group)


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0  # padded positions are masked out of attention and loss alike


def _save(model: Any, tokenizer: Any, config: TrainConfig, fallback: bool) -> None:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    # safetensors is peft's default; named here because vLLM loads adapter_model.safetensors.
    model.save_pretrained(out, safe_serialization=True)
    if fallback:
        (out / "chat_template.jinja").write_text(FALLBACK_CHAT_TEMPLATE + "\n", encoding="utf-8")


def _write_summary(result: TrainResult, config: TrainConfig) -> None:
    """training.json beside the adapter: the options and figures of this run."""
    options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    figures = {k: v for k, v in asdict(result).items() if k not in ("adapter_dir", "losses")}
    figures["tokens_per_second"] = round(result.tokens_per_second, 1)
    summary = {"config": options, "figures": figures, "losses": result.losses}
    path = Path(config.out) / "training.json"
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
