"""Adapters served by vLLM: checking an adapter folder, the server's command-line arguments, and
registering an adapter with a running server.

vLLM serves a LoRA adapter under a name, as if it were a model: a chat request whose "model" is
the adapter's name is answered by the base model with that adapter applied. Adapters are given
at start-up (--enable-lora --lora-modules NAME=PATH) or, when the server runs with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, added at run time with POST /v1/load_lora_adapter.

    adapter = read_adapter(Path("adapters/company-qa"))
    args = vllm_serve_args("Qwen/Qwen2.5-1.5B-Instruct", [adapter], served_dir="/adapters")
    register_adapter("http://vllm:8000/v1", "company-qa-v2", "/adapters/company-qa-v2")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from .errors import AdapterError, AdapterRegistrationError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# The values vLLM accepts for --max-lora-rank; an adapter of rank r needs the first one >= r.
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
# Loading an adapter reads its weights to the GPU; a few seconds is usual, a minute is generous.
REGISTRATION_TIMEOUT = 60.0


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter folder that vLLM can load, and the name it is served under."""

    name: str
    path: Path
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    base_model: str | None = None


def read_adapter(path: Path, name: str | None = None) -> Adapter:
    """Check an adapter folder as vLLM will and describe it; name defaults to the folder's name.

    Raises AdapterError when a file is missing or the adapter uses something vLLM refuses
    (DoRA, modules_to_save, trained biases) or is not a LoRA adapter.
    """
    path = Path(path)
    missing = [f for f in ADAPTER_FILES if not (path / f).is_file()]
    if missing:
        raise AdapterError(
            f"{path} is not an adapter folder: {', '.join(missing)} missing "
            "(train one with `python -m generation.lora train`)."
        )
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise AdapterError(f"{path / 'adapter_config.json'} cannot be read: {error}")
    _check_servable(path, config)
    modules = config.get("target_modules") or ()
    return Adapter(
        name=name or path.name,
        path=path,
        rank=int(config["r"]),
        alpha=float(config.get("lora_alpha", config["r"])),
        target_modules=(modules,) if isinstance(modules, str) else tuple(modules),
        base_model=config.get("base_model_name_or_path"),
    )


def _check_servable(path: Path, config: dict) -> None:
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"it is a {config.get('peft_type')} adapter, not LoRA")
    if not isinstance(config.get("r"), int) or config["r"] < 1:
        problems.append("adapter_config.json has no rank r")
    if config.get("use_dora"):
        problems.append("vLLM does not serve DoRA adapters")
    if config.get("modules_to_save"):
        problems.append("vLLM does not serve adapters with modules_to_save")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append("vLLM does not serve adapters with trained biases")
    if problems:
        raise AdapterError(f"{path}: " + "; ".join(problems) + ".")


def max_lora_rank(adapters: Sequence[Adapter]) -> int:
    """The smallest --max-lora-rank value vLLM accepts that fits every adapter."""
    highest = max((adapter.rank for adapter in adapters), default=1)
    for value in VLLM_MAX_LORA_RANKS:
        if value >= highest:
            return value
    raise AdapterError(
        f"Rank {highest} is above the largest rank vLLM serves ({VLLM_MAX_LORA_RANKS[-1]})."
    )


def served_path(adapter: Adapter, served_dir: str | None = None) -> str:
    """Where the server sees the adapter: served_dir/<folder name>, or its own path."""
    if served_dir:
        return str(PurePosixPath(served_dir) / adapter.path.name)
    return str(adapter.path)


def lora_module_arg(
    adapter: Adapter, served_dir: str | None = None, base_model_name: str | None = None
) -> str:
    """One --lora-modules value: NAME=PATH, or vLLM's JSON form when a base model is named."""
    where = served_path(adapter, served_dir)
    if base_model_name:
        return json.dumps({"name": adapter.name, "path": where, "base_model_name": base_model_name})
    return f"{adapter.name}={where}"


def vllm_serve_args(
    base_model: str,
    adapters: Sequence[Adapter],
    *,
    served_dir: str | None = None,
    max_loras: int | None = None,
) -> list[str]:
    """The vLLM server arguments that serve base_model with these adapters by name.

    served_dir: the folder the server sees the adapter folders in (e.g. /adapters when
    docker-compose mounts ./adapters there); max_loras: adapters in one batch (default: all).
    Raises AdapterError for duplicate names or a rank vLLM cannot serve.
    """
    names = [adapter.name for adapter in adapters]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise AdapterError(f"Adapter names must be unique: {', '.join(duplicates)}.")
    args = ["--model", base_model]
    if not adapters:
        return args
    args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank(adapters))]
    args += ["--max-loras", str(max_loras or len(adapters)), "--lora-modules"]
    return args + [lora_module_arg(adapter, served_dir) for adapter in adapters]


# --- Run-time registration ----------------------------------------------------------------------


def register_adapter(
    base_url: str,
    name: str,
    path: str,
    *,
    api_key: str | None = None,
    replace: bool = False,
    timeout: float = REGISTRATION_TIMEOUT,
) -> str:
    """Load the adapter at path (as the server sees it) into a running vLLM server as name.

    base_url is the OpenAI-compatible base, e.g. http://vllm:8000/v1. replace unloads an adapter
    already served under that name first. Returns the server's confirmation. Raises
    AdapterRegistrationError when the server is unreachable, does not allow run-time
    adapters, or cannot load this one.
    """
    if replace:
        try:
            unregister_adapter(base_url, name, api_key=api_key, timeout=timeout)
        except AdapterRegistrationError as error:
            if error.status != 404:
                raise
    body = {"lora_name": name, "lora_path": path}
    return _post(base_url, "load_lora_adapter", body, api_key, timeout)


def unregister_adapter(
    base_url: str, name: str, *, api_key: str | None = None, timeout: float = REGISTRATION_TIMEOUT
) -> str:
    """Stop serving the adapter called name. Raises AdapterRegistrationError (status 404 when
    the server has no adapter of that name)."""
    return _post(base_url, "unload_lora_adapter", {"lora_name": name}, api_key, timeout)


def endpoint_url(base_url: str, endpoint: str) -> str:
    """base_url (with or without its /v1) joined to a /v1 endpoint name."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return f"{base}/{endpoint}"


def _post(base_url: str, endpoint: str, body: dict, api_key: str | None, timeout: float) -> str:
    url = endpoint_url(base_url, endpoint)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise AdapterRegistrationError(f"The vLLM server at {url} did not answer in {timeout:g} s.")
    except httpx.HTTPError as error:
        raise AdapterRegistrationError(f"Cannot reach the vLLM server at {url}: {error}.")
    if response.status_code == 200:
        return response.text.strip().strip('"')
    raise AdapterRegistrationError(
        _refusal(response, endpoint, body["lora_name"]), status=response.status_code
    )


def _refusal(response: httpx.Response, endpoint: str, name: str) -> str:
    message = _error_message(response)
    if response.status_code == 404 and message in ("", "Not Found"):
        # FastAPI's own 404: the route is absent, so run-time updates are switched off.
        return (
            "The vLLM server does not accept adapters at run time: start it with "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora."
        )
    if response.status_code in (401, 403):
        return "The vLLM server refused the API key (RAG_LLM_API_KEY)."
    action = "load" if endpoint == "load_lora_adapter" else "unload"
    return f"vLLM could not {action} adapter {name!r} (HTTP {response.status_code}): {message}"


def _error_message(response: httpx.Response) -> str:
    """The message of vLLM's error body: {"message"}, {"error": {"message"}} or {"detail"}."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body.get("message") or body.get("detail") or "")[:300]
