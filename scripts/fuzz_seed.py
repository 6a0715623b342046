#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/<target>/) from testdata/ and fuzz/seeds/.

Targets whose first input byte picks a variant get that byte prepended, so each recorded
stream seeds the decoder it was recorded from. Idempotent: seeds are named by content.
"""
import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
SEEDS = ROOT / "fuzz" / "seeds"


def sse_body(path: pathlib.Path) -> bytes:
    """A recording as SSE bytes: .sse files as they are, .jsonl lines as data events."""
    raw = path.read_bytes()
    if path.suffix == ".sse":
        return raw
    out = bytearray()
    for line in raw.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            kind = json.loads(line).get("type")
        except (ValueError, AttributeError):
            kind = None
        if isinstance(kind, str):
            out += b"event: " + kind.encode() + b"\n"
        out += b"data: " + line + b"\n\n"
    return bytes(out)


def put(corpus: pathlib.Path, target: str, data: bytes) -> None:
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest())).write_bytes(data)


def main() -> None:
    corpus = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus")
    # Decoder selector bytes of fuzz_targets/stream_decoders.rs.
    selector = {
        "anthropic-messages": [0],
        "openai-chat": [1],
        "openai-compatible": [2],
        "openai-responses": [3],
    }
    for path in sorted((TESTDATA / "streams").glob("*")):
        if path.suffix not in (".sse", ".jsonl"):
            continue
        body = sse_body(path)
        put(corpus, "sse_decoder", bytes([7]) + body)
        family = path.name.split("--", 1)[0]
        for sel in selector.get(family, []):
            put(corpus, "stream_decoders", bytes([sel]) + body)
    # Bedrock's event streams: the decoder (4) and the gateway's translation (5).
    for path in sorted((TESTDATA / "bedrock").glob("*.eventstream")):
        for sel in (4, 5):
            put(corpus, "stream_decoders", bytes([sel]) + path.read_bytes())
    for path in sorted((TESTDATA / "errors").glob("*")):
        if path.suffix in (".sse",):
            body = path.read_bytes()
            put(corpus, "sse_decoder", bytes([3]) + body)
            family = path.name.split("--", 1)[0]
            for sel in selector.get(family, []):
                put(corpus, "stream_decoders", bytes([sel]) + body)
        elif path.suffix == ".json" and not path.name.endswith((".headers.json", "manifest.json")):
            put(corpus, "persisted_errors", bytes([29]) + path.read_bytes())
    # Request-body selector bytes of fuzz_targets/request_bodies.rs, seeded from the
    # wire samples of codersdk's tests (wherever the test layout keeps them).
    bodies = {
        "CreateChatRequest": 0,
        "CreateChatMessageRequest": 1,
        "EditChatMessageRequest": 2,
        "UpdateChatRequest": 3,
        "SubmitToolResultsRequest": 4,
        "CreateChatProviderConfigRequest": 5,
        "CreateChatModelConfigRequest": 6,
        "UpdateChatModelConfigRequest": 7,
        "CreateUserChatProviderKeyRequest": 8,
        "CreateMCPServerConfigRequest": 9,
        "UpdateMCPServerConfigRequest": 9,
        "UpdateChatSystemPromptRequest": 9,
    }
    for samples in sorted((ROOT / "codersdk" / "tests").glob("**/samples")):
        for name, sel in bodies.items():
            for sample in sorted((samples / name).glob("*.json")):
                put(corpus, "request_bodies", bytes([sel]) + sample.read_bytes())
        for sample in sorted((samples / "ChatMessagePart").glob("*.json")):
            put(corpus, "message_content", bytes([2]) + b"[" + sample.read_bytes() + b"]")
        for sample in sorted((samples / "ChatError").glob("*.json")):
            put(corpus, "persisted_errors", bytes([0]) + sample.read_bytes())
    if SEEDS.is_dir():
        for target_dir in sorted(p for p in SEEDS.iterdir() if p.is_dir()):
            for seed in sorted(target_dir.iterdir()):
                put(corpus, target_dir.name, seed.read_bytes())


if __name__ == "__main__":
    main()
