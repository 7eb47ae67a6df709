"""LoRA training on a tiny Llama-style model built here from a config (random weights, a tokenizer
trained on the examples, nothing downloaded), adapter checks and vLLM serving arguments, run-time
registration against a real HTTP server that answers as vLLM does, and the training examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from generation.lora.__main__ import main
from generation.lora.dataset import (
    add_marker,
    cite_answer,
    parse_question_reply,
    renumber_citations,
    training_example,
)
from generation.lora.errors import AdapterError, AdapterRegistrationError, TrainingDataError
from generation.lora.serving import (
    max_lora_rank,
    read_adapter,
    register_adapter,
    unregister_adapter,
    vllm_serve_args,
)
from generation.lora.train import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORE_INDEX,
    TrainConfig,
    encode_example,
    ensure_chat_template,
    load_examples,
    train,
)
from generation.prompts import NOT_FOUND_ANSWER
from retrieval.types import Passage
from tests.conftest import REPO_ROOT
from tests.openai_server import free_port

FACTS = [
    ("How many vacation days do employees get?", "Employees get 25 vacation days a year.", 3),
    ("Who approves travel?", "Travel is approved by the team lead before booking.", 7),
    ("When are expenses reimbursed?", "Expenses are reimbursed within 30 days.", 8),
    ("Where are incidents reported?", "Incidents are reported in the incidents channel.", 12),
    ("What is the on-call rotation?", "The on-call rotation changes every Monday.", 14),
    ("How long is parental leave?", "Parental leave lasts 16 weeks at full pay.", 4),
]


def handbook_passage(n: int, text: str, page: int) -> Passage:
    return Passage(chunk_id=n, text=text, score=1.0, document_id=1, document_title="Handbook",
                   page=page)  # fmt: skip


def examples() -> list[dict[str, Any]]:
    rows = []
    for i, (question, fact, page) in enumerate(FACTS):
        other = FACTS[(i + 1) % len(FACTS)]
        passages = [handbook_passage(i, fact, page), handbook_passage(100 + i, other[1], other[2])]
        answer = add_marker(fact, 1)
        rows.append(training_example(question, passages, answer, source="test"))
    return rows


def build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<unk>", "<pad>", "<s>", "</s>"]
    backend.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=special))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )


def build_tiny_model(folder: Path, texts: list[str]) -> Path:
    """A two-layer Llama with hidden size 32 and random weights, saved with its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(texts)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        # With the usual 0.02 the output head's rows are so short that no logit can stand out:
        # an adapter of the inner layers could not lower the loss however well it learnt.
        initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    rows = examples()
    texts = [m["content"] for row in rows for m in row["messages"]] + [
        "<|system|> <|user|> <|assistant|>"
    ]
    return {
        "base": build_tiny_model(folder / "base", texts),
        "data": write_jsonl(folder / "train.jsonl", rows),
        "out": folder / "adapter",
    }


@pytest.fixture(scope="module")
def trained(tiny):
    # One thread: for a model this small, more threads only wait on each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = TrainConfig(
        base=str(tiny["base"]),
        data=tiny["data"],
        out=tiny["out"],
        epochs=6,
        lr=2e-2,
        rank=8,
        alpha=16,
        dropout=0.0,
        batch_size=2,
        quantization="none",
    )
    try:
        yield train(config, progress=False)
    finally:
        torch.set_num_threads(threads)


# --- Training -----------------------------------------------------------------------------------


def test_training_lowers_the_loss(trained):
    assert trained.examples == len(FACTS)
    assert trained.steps == 6 * 3
    early, late = trained.losses[:3], trained.losses[-3:]
    assert sum(late) / 3 < 0.7 * (sum(early) / 3)
    assert trained.tokens_per_second > 0


def test_adapter_folder_holds_what_vllm_loads(trained):
    files = {path.name for path in trained.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    config = json.loads((trained.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    assert not config.get("modules_to_save") and not config.get("use_dora")
    summary = json.loads((trained.adapter_dir / "training.json").read_text())
    assert summary["figures"]["examples"] == len(FACTS)


def test_adapter_loads_with_peft_and_changes_the_output(trained, tiny):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    inputs = torch.tensor([[2, 5, 6, 7, 8, 9]])
    base = AutoModelForCausalLM.from_pretrained(tiny["base"])
    with torch.no_grad():
        before = base(input_ids=inputs).logits
    adapted = PeftModel.from_pretrained(base, trained.adapter_dir)
    with torch.no_grad():
        after = adapted(input_ids=inputs).logits
    assert (after - before).abs().max() > 1e-3


def test_a_tokenizer_without_chat_template_gets_the_fallback_saved_beside_the_adapter(trained):
    assert trained.fallback_chat_template
    saved = (trained.adapter_dir / "chat_template.jinja").read_text().strip()
    assert saved == FALLBACK_CHAT_TEMPLATE


def test_only_the_answer_tokens_carry_loss(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    ensure_chat_template(tokenizer)
    messages = examples()[0]["messages"]
    encoded = encode_example(tokenizer, messages, max_length=4096)
    labelled = [t for t in encoded.labels if t != IGNORE_INDEX]
    prompt_length = encoded.labels.index(labelled[0])
    assert all(label == IGNORE_INDEX for label in encoded.labels[:prompt_length])
    answer = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    assert labelled[: len(answer)] == answer
    assert tokenizer.eos_token_id in labelled


def test_the_tokenizers_own_chat_template_renders_the_prompt(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} ; {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    assert ensure_chat_template(tokenizer) is False
    messages = examples()[1]["messages"]
    encoded = encode_example(tokenizer, messages, max_length=4096)
    prompt_length = encoded.labels.count(IGNORE_INDEX)
    assert tokenizer.decode(encoded.input_ids[prompt_length - 2 : prompt_length]) == "assistant :"


def test_examples_longer_than_max_length_are_left_out(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    ensure_chat_template(tokenizer)
    assert encode_example(tokenizer, examples()[0]["messages"], max_length=20) is None


def test_a_malformed_line_is_reported_with_its_number(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(examples()[0]) + "\n{not json\n")
    with pytest.raises(TrainingDataError, match="line 2 is not JSON"):
        load_examples(data)


def test_an_example_must_end_with_the_answer(tmp_path):
    row = examples()[0]
    row["messages"] = row["messages"][:-1]
    with pytest.raises(TrainingDataError, match="line 1: the last message must be the assistant"):
        load_examples(write_jsonl(tmp_path / "data.jsonl", [row]))


# --- Serving ------------------------------------------------------------------------------------


def test_read_adapter_describes_the_trained_adapter(trained, tiny):
    adapter = read_adapter(trained.adapter_dir, name="company-qa")
    assert (adapter.name, adapter.rank, adapter.alpha) == ("company-qa", 8, 16.0)
    assert "q_proj" in adapter.target_modules
    assert adapter.base_model == str(tiny["base"])


def test_serve_args_name_every_adapter_and_a_rank_vllm_accepts(trained):
    adapter = read_adapter(trained.adapter_dir, name="company-qa")
    args = vllm_serve_args("Qwen/Qwen2.5-1.5B-Instruct", [adapter], served_dir="/adapters")
    assert args == [
        "--model", "Qwen/Qwen2.5-1.5B-Instruct", "--enable-lora", "--max-lora-rank", "8",
        "--max-loras", "1", "--lora-modules", "company-qa=/adapters/adapter",
    ]  # fmt: skip


def test_max_lora_rank_rounds_up_to_a_value_vllm_accepts(trained):
    adapter = read_adapter(trained.adapter_dir)
    wider = type(adapter)(**{**adapter.__dict__, "name": "wide", "rank": 20})
    assert max_lora_rank([adapter, wider]) == 32


def test_a_folder_without_weights_is_not_an_adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    with pytest.raises(AdapterError, match="adapter_model.safetensors missing"):
        read_adapter(tmp_path)


def test_dora_and_modules_to_save_are_refused_as_vllm_does(tmp_path):
    config = {"r": 8, "peft_type": "LORA", "use_dora": True, "modules_to_save": ["lm_head"]}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(AdapterError, match="DoRA.*modules_to_save"):
        read_adapter(tmp_path)


def test_serve_args_command_prints_the_arguments(trained, capsys):
    status = main(["serve-args", "--base", "base-model", f"company-qa={trained.adapter_dir}"])
    assert status == 0
    assert "--lora-modules company-qa=" in capsys.readouterr().out


def test_train_command_reports_a_missing_data_file(tmp_path, capsys):
    status = main(["train", "--base", "x", "--data", str(tmp_path / "no.jsonl"), "--out", "o"])
    assert status == 1
    assert "Cannot read the training data" in capsys.readouterr().err


# --- Run-time registration ----------------------------------------------------------------------


class VllmAdapterServer:
    """A real HTTP server answering /v1/models and /v1/(un)load_lora_adapter as vLLM does: plain
    text on success, vLLM's error JSON otherwise, FastAPI's 404 when run-time updates are off."""

    def __init__(self, runtime_updates: bool = True, max_lora_rank: int = 16) -> None:
        self.runtime_updates = runtime_updates
        self.max_lora_rank = max_lora_rank
        self.adapters: dict[str, str] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def load(self, body: dict) -> tuple[int, Any]:
        name, path = body.get("lora_name"), body.get("lora_path")
        if name in self.adapters:
            return 400, _vllm_error(f"The lora adapter '{name}' has already been loaded.", 400)
        config = Path(path, "adapter_config.json")
        if not config.is_file():
            return 404, _vllm_error(f"No adapter found for {path}", 404)
        if json.loads(config.read_text())["r"] > self.max_lora_rank:
            return 400, _vllm_error("LoRA rank is greater than max_lora_rank.", 400)
        self.adapters[name] = path
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, body: dict) -> tuple[int, Any]:
        name = body.get("lora_name")
        if self.adapters.pop(name, None) is None:
            return 404, _vllm_error(f"The lora adapter '{name}' cannot be found.", 404)
        return 200, f"Success: LoRA adapter '{name}' removed successfully."

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = [{"id": name, "object": "model"} for name in ["base", *server.adapters]]
                self._send(200, {"object": "list", "data": data})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = {"/v1/load_lora_adapter": server.load,
                          "/v1/unload_lora_adapter": server.unload}.get(self.path)  # fmt: skip
                if action is None or not server.runtime_updates:
                    return self._send(404, {"detail": "Not Found"})
                self._send(*action(body))

            def _send(self, status: int, payload: Any) -> None:
                is_text = isinstance(payload, str)
                data = payload.encode() if is_text else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if is_text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _vllm_error(message: str, code: int) -> dict[str, Any]:
    kind = "NotFoundError" if code == 404 else "BadRequestError"
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


@pytest.fixture
def vllm_server():
    server = VllmAdapterServer()
    yield server
    server.close()


def test_register_loads_the_adapter_under_its_name(vllm_server, trained):
    reply = register_adapter(vllm_server.url, "company-qa", str(trained.adapter_dir))
    assert reply == "Success: LoRA adapter 'company-qa' added successfully."
    assert vllm_server.adapters == {"company-qa": str(trained.adapter_dir)}


def test_register_again_explains_the_name_is_taken(vllm_server, trained):
    register_adapter(vllm_server.url, "company-qa", str(trained.adapter_dir))
    with pytest.raises(AdapterRegistrationError, match="has already been loaded"):
        register_adapter(vllm_server.url, "company-qa", str(trained.adapter_dir))


def test_register_with_replace_swaps_the_adapter(vllm_server, trained):
    vllm_server.adapters["company-qa"] = "/adapters/old"
    register_adapter(vllm_server.url, "company-qa", str(trained.adapter_dir), replace=True)
    assert vllm_server.adapters == {"company-qa": str(trained.adapter_dir)}


def test_register_reports_a_path_the_server_cannot_find(vllm_server, tmp_path):
    with pytest.raises(AdapterRegistrationError, match="HTTP 404.*No adapter found") as caught:
        register_adapter(vllm_server.url, "company-qa", str(tmp_path / "missing"))
    assert caught.value.status == 404


def test_register_explains_how_to_allow_runtime_updates(trained):
    server = VllmAdapterServer(runtime_updates=False)
    try:
        with pytest.raises(AdapterRegistrationError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
            register_adapter(server.url, "company-qa", str(trained.adapter_dir))
    finally:
        server.close()


def test_register_reports_a_dead_server():
    with pytest.raises(AdapterRegistrationError, match="Cannot reach the vLLM server"):
        register_adapter(f"http://127.0.0.1:{free_port()}/v1", "company-qa", "/adapters/x")


def test_unregister_command_stops_serving_the_adapter(vllm_server, capsys):
    vllm_server.adapters["company-qa"] = "/adapters/company-qa"
    assert main(["unregister", "--server", vllm_server.url, "--name", "company-qa"]) == 0
    assert vllm_server.adapters == {}
    assert "removed successfully" in capsys.readouterr().out


def test_unregister_of_an_unknown_adapter_fails(vllm_server):
    with pytest.raises(AdapterRegistrationError, match="cannot be found"):
        unregister_adapter(vllm_server.url, "nope")


# --- Training examples --------------------------------------------------------------------------


def test_cite_answer_cites_each_sentence_to_its_supporting_passage():
    passages = [handbook_passage(1, FACTS[0][1], 3), handbook_passage(2, FACTS[2][1], 8)]
    answer = "Employees get 25 vacation days a year. Expenses are reimbursed within 30 days."
    assert cite_answer(answer, passages) == (
        "Employees get 25 vacation days a year [1]. Expenses are reimbursed within 30 days [2]."
    )


def test_cite_answer_leaves_out_an_answer_no_passage_supports():
    passages = [handbook_passage(1, FACTS[0][1], 3)]
    assert cite_answer("The cafeteria serves lunch from noon until two.", passages) is None


def test_renumber_citations_follows_the_new_passage_order():
    text = "Travel needs approval [2]. Expenses take a month [1, 2]."
    expected = "Travel needs approval [1]. Expenses take a month [1, 3]."
    assert renumber_citations(text, {1: 3, 2: 1}) == expected


def test_renumber_citations_refuses_a_source_that_is_gone():
    assert renumber_citations("Travel needs approval [4].", {1: 1}) is None


def test_training_example_is_the_served_prompt_plus_the_answer():
    from generation.prompts import build_messages

    passages = [handbook_passage(1, FACTS[0][1], 3)]
    row = training_example("How many days?", passages, NOT_FOUND_ANSWER, source="eval")
    assert row["messages"][:-1] == build_messages("How many days?", passages)
    assert row["messages"][-1] == {"role": "assistant", "content": NOT_FOUND_ANSWER}


def test_parse_question_reply_reads_the_json_pair():
    reply = 'Sure:\n{"question": "Who approves travel?", "answer": "The team lead [1]."}'
    assert parse_question_reply(reply) == ("Who approves travel?", "The team lead.")
    assert parse_question_reply("I cannot help with that.") is None


# --- The command end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_train_command_end_to_end(tiny, tmp_path):
    out = tmp_path / "company-qa"
    command = [sys.executable, "-m", "generation.lora", "train", "--base", str(tiny["base"])]
    command += ["--data", str(tiny["data"]), "--out", str(out), "--epochs", "3", "--rank", "4"]
    command += ["--alpha", "8", "--lr", "2e-2", "--batch-size", "2", "--quantization", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "examples       6 trained, 0 skipped" in result.stdout
    assert "tokens/s" in result.stdout
    assert read_adapter(out).rank == 4
