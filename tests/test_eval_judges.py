"""Every judge exercised: gold reward, a tiny reward model, a local LM judge, an OpenAI-compatible loopback server."""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

from lit_daa.errors import InputError
from lit_daa.evaluation import WinRate
from lit_daa.evaluation.judges import (
    GoldRewardJudge,
    LocalLLMJudge,
    OpenAIJudge,
    RewardModelJudge,
    Verdict,
    parse_preference,
)
from lit_daa.synthetic.tokenizer import build_word_tokenizer
from lit_daa.synthetic.world import SyntheticWorld, vocabulary

W, L, T, X = Verdict.WIN, Verdict.LOSS, Verdict.TIE, Verdict.INVALID
MUSIC = "topic music : music_1 music_2 music_3 . answer :"


def neox_config(vocab_size: int, **extra: object) -> GPTNeoXConfig:
    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        eos_token_id=2,
        bos_token_id=2,
        pad_token_id=0,
        **extra,
    )


# ---------------------------------------------------------------- gold reward


def test_gold_reward_judge() -> None:
    judge = GoldRewardJudge(length_weight=0.5, target_length=2, overlength_weight=0.5)
    verdicts = judge.judge(
        [MUSIC] * 4,
        [" music_4 music_5", " food_1", " music_1 the", " music_1 music_1 music_1 music_1"],
        [" food_2 music_1", " music_9", " music_7 very", " music_1 music_2"],
    )
    # gold: 2 vs 0; -1 vs 1; 1 vs 1 (tie); 4 - 0.5 * 2 = 3 vs 2
    assert verdicts == [W, L, T, W]
    with pytest.raises(InputError, match="synthetic world"):
        judge.judge(["SUBREDDIT: r/cats POST: ... TL;DR:"], [" x"], [" y"])
    with pytest.raises(InputError, match="as many"):
        judge.judge([MUSIC], [" a", " b"], [" c"])


def test_win_rate_counts() -> None:
    rate = WinRate.from_verdicts([W, W, W, L, T, X, X])
    assert (rate.wins, rate.losses, rate.ties, rate.invalid, rate.judged) == (3, 1, 1, 2, 5)
    assert rate.rate == pytest.approx(3.5 / 5)
    assert rate.stderr == pytest.approx((0.7 * 0.3 / 5) ** 0.5)
    assert WinRate.from_verdicts(["win", "loss"]).rate == 0.5


# ---------------------------------------------------------------- reward model


@pytest.fixture(scope="module")
def reward_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reward_model")
    tokenizer = build_word_tokenizer(vocabulary())
    torch.manual_seed(0)
    GPTNeoXForSequenceClassification(neox_config(len(tokenizer), num_labels=1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_reward_model_judge_agrees_with_unbatched_scores(reward_model_folder: Path) -> None:
    world, rng = SyntheticWorld(), random.Random(0)
    prompts = [world.prompt(rng) for _ in range(9)]
    candidates = [world.response(p, rng) for p in prompts]
    references = [world.response(p, rng) for p in prompts]
    references[4] = candidates[4]  # the same text scores the same: a tie
    judge = RewardModelJudge(str(reward_model_folder), batch_size=4, device="cpu")
    verdicts = judge.judge(prompts, candidates, references)

    model = GPTNeoXForSequenceClassification.from_pretrained(reward_model_folder).eval()
    tokenizer = judge.tokenizer

    def alone(text: str) -> float:  # one text, no padding: nothing for the batched path to get wrong
        with torch.no_grad():
            return model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()

    for i, verdict in enumerate(verdicts):
        c, r = alone(prompts[i] + candidates[i]), alone(prompts[i] + references[i])
        if i == 4:
            assert verdict == T
        else:
            assert abs(c - r) > 1e-5 and verdict == (W if c > r else L)


def test_reward_model_judge_rejects_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="judge.model"):
        RewardModelJudge(str(tmp_path / "missing"))
    GPTNeoXForSequenceClassification(neox_config(len(vocabulary()), num_labels=2)).save_pretrained(tmp_path)
    build_word_tokenizer(vocabulary()).save_pretrained(tmp_path)
    with pytest.raises(InputError, match="exactly one"):
        RewardModelJudge(str(tmp_path))


# ---------------------------------------------------------------- local LLM


def constant_lm(folder: Path, answer: str) -> Path:
    """A GPT-NeoX whose greedy output is always the word `answer`: the final layer norm ignores its input (weight 0)
    and its bias points the output head at that one word."""
    words = ["<pad>", "<unk>", "<eos>", "Preferred:A", "Preferred:B", "whatever"]
    tokenizer = build_word_tokenizer(words)
    model = GPTNeoXForCausalLM(neox_config(len(words), tie_word_embeddings=False))
    with torch.no_grad():
        model.gpt_neox.final_layer_norm.weight.zero_()
        model.gpt_neox.final_layer_norm.bias.fill_(1.0)
        model.get_output_embeddings().weight.zero_()
        model.get_output_embeddings().weight[words.index(answer)] = 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_local_llm_judge_maps_positions_back(tmp_path: Path) -> None:
    world, rng = SyntheticWorld(), random.Random(1)
    prompts = [world.prompt(rng) for _ in range(12)]
    candidates = [world.response(p, rng) for p in prompts]
    references = [world.response(p, rng) for p in prompts]

    judge = LocalLLMJudge(str(constant_lm(tmp_path / "says_a", "Preferred:A")), max_new_tokens=3, batch_size=5)
    assert judge.use_chat_template  # the embedded tokenizer has one
    verdicts = judge.judge(prompts, candidates, references)
    firsts = [judge.candidate_first(*item) for item in zip(prompts, candidates, references, strict=True)]
    assert 0 < sum(firsts) < len(firsts), "the seeded order should put the candidate first only sometimes"
    # the judge always prefers A: the candidate wins exactly where it was shown as A
    assert verdicts == [W if first else L for first in firsts]

    babbler = LocalLLMJudge(
        str(constant_lm(tmp_path / "babbles", "whatever")), template="{post} {summary_a} {summary_b}"
    )
    assert babbler.judge(prompts[:3], candidates[:3], references[:3]) == [X, X, X]


def test_parse_preference() -> None:
    assert parse_preference("Comparison: A is tighter.\nPreferred: A") == "A"
    assert parse_preference("comparison...\n  preferred :b") == "B"
    assert parse_preference("**Preferred:** B") == "B"
    assert parse_preference('Preferred: "A"') == "A"
    assert parse_preference("Preferred: Summary B.") == "B"
    assert parse_preference("I preferred: A at first.\nPreferred: B") == "B"  # the last one counts
    assert parse_preference("Preferred: Tie") == "tie"
    assert parse_preference("Preferred: neither") == "tie"
    assert parse_preference("Preferred: Alpha") is None
    assert parse_preference("I like A better") is None
    assert parse_preference(None) is None


def test_bad_template_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="placeholders"):
        OpenAIJudge(template="{post} {summary_1}")


# ---------------------------------------------------------------- OpenAI-compatible HTTP

KEY = "sk-test-do-not-store-1234"
SECTIONS = re.compile(r"Summary A:\n(.*?)\n\nSummary B:\n(.*?)\n\n", re.DOTALL)


class FakeChatServer(ThreadingHTTPServer):
    """Answers /v1/chat/completions from the request content: prefers the summary holding MARKER, answers garbage
    for posts holding GARBAGE, "tie" for TIE, fails with 503 the first time it sees FLAKY and always for DOWN."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.marker_positions: list[str] = []
        self.seen_flaky = False
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: FakeChatServer

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(body)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._send(401, {"error": "bad key"})
        message = body["messages"][0]["content"]
        if "DOWN" in message:
            return self._send(503, {"error": "overloaded"})
        if "FLAKY" in message:
            with self.server.lock:
                first_time, self.server.seen_flaky = not self.server.seen_flaky, True
            if first_time:
                return self._send(503, {"error": "overloaded"})
        a, b = SECTIONS.search(message).groups()
        if "GARBAGE" in message:
            text = "I cannot decide, both are summaries."
        elif "TIE" in message:
            text = "Comparison: They say the same.\nPreferred: tie"
        else:
            with self.server.lock:
                self.server.marker_positions.append("A" if "MARKER" in a else "B")
            text = f"Comparison: one of them has the marker.\nPreferred: {'A' if 'MARKER' in a else 'B'}"
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server() -> Iterator[FakeChatServer]:
    srv = FakeChatServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def items() -> tuple[list[str], list[str], list[str], list[Verdict]]:
    prompts, candidates, references, expected = [], [], [], []
    for i in range(14):
        kind = "win" if i < 6 else "loss" if i < 10 else ["GARBAGE", "TIE", "FLAKY", "DOWN"][i - 10]
        prompts.append(f"POST {i} {kind if kind.isupper() else ''} TL;DR:")
        candidates.append(f"candidate {i}" + (" MARKER" if kind in ("win", "FLAKY") else ""))
        references.append(f"reference {i}" + (" MARKER" if kind == "loss" else ""))
        expected.append({"win": W, "loss": L, "GARBAGE": X, "TIE": T, "FLAKY": W, "DOWN": X}[kind])
    return prompts, candidates, references, expected


def test_openai_judge_over_loopback_http(
    server: FakeChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    cache = tmp_path / "cache" / "judge.jsonl"
    options = dict(base_url=base_url, model="judge-x", api_key_env="TEST_JUDGE_KEY", cache_path=str(cache))
    prompts, candidates, references, expected = items()

    judge = OpenAIJudge(**options, seed=7, max_retries=2, retry_wait=0.0, max_workers=3)
    verdicts = judge.judge(prompts, candidates, references)
    assert verdicts == expected
    assert set(server.marker_positions) == {"A", "B"}, "A/B order should vary across items"
    assert judge.failed == 1  # DOWN, after 1 + 2 attempts
    assert len(server.requests) == 14 + 1 + 2  # one each, FLAKY's retry, DOWN's two retries
    assert all(r["model"] == "judge-x" and r["temperature"] == 0.0 for r in server.requests)
    assert WinRate.from_verdicts(verdicts).invalid == 2

    text = cache.read_text()
    assert KEY not in text and "TEST_JUDGE_KEY" not in text
    assert len(text.splitlines()) == 13  # every answered item, DOWN's failure is not cached

    # a rerun answers from the cache: no key needed for cached items, and only DOWN is asked again
    monkeypatch.delenv("TEST_JUDGE_KEY")
    rerun = OpenAIJudge(**options, seed=7, max_retries=0, retry_wait=0.0)
    assert rerun.judge(prompts[:13], candidates[:13], references[:13]) == expected[:13]
    assert len(server.requests) == 17 and rerun.requests_sent == 0
    with pytest.raises(InputError, match="TEST_JUDGE_KEY"):
        rerun.judge(prompts, candidates, references)  # DOWN is not cached, so it needs a request and a key

    # another seed shows some items in the other order: new questions, but the verdicts still map back the same
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    reordered = OpenAIJudge(**options, seed=8, max_retries=0, retry_wait=0.0)
    assert reordered.judge(prompts[:10], candidates[:10], references[:10]) == expected[:10]
    flipped = sum(
        judge.candidate_first(*x) != reordered.candidate_first(*x)
        for x in zip(prompts[:10], candidates[:10], references[:10], strict=True)
    )
    assert 0 < flipped == reordered.requests_sent  # exactly the re-ordered questions were asked anew


def test_openai_judge_refused_key_and_wrong_url(server: FakeChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = server.server_address[1]
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-wrong")
    judge = OpenAIJudge(base_url=f"http://127.0.0.1:{port}/v1", api_key_env="TEST_JUDGE_KEY", retry_wait=0.0)
    with pytest.raises(InputError, match="refused the API key in TEST_JUDGE_KEY") as err:
        judge.judge(*items()[:3])
    assert "sk-wrong" not in str(err.value)
    wrong = OpenAIJudge(base_url=f"http://127.0.0.1:{port}/nope", api_key_env="TEST_JUDGE_KEY", retry_wait=0.0)
    with pytest.raises(InputError, match="404"):
        wrong.judge(*items()[:3])


@pytest.mark.parametrize(
    ("base_url", "refused"),
    [
        ("http://api.example.com/v1", "plain http to api.example.com"),
        ("http://10.0.0.5:8000/v1", "plain http to 10.0.0.5"),
        ("ftp://api.example.com/v1", "must be an https:// address"),
        ("api.example.com/v1", "must be an https:// address"),
        ("https://api.example.com/v1", None),
        ("http://localhost:8000/v1", None),
        ("http://127.0.0.1:8000/v1", None),
        ("http://[::1]:8000/v1", None),
    ],
)
def test_openai_judge_refuses_plain_http_to_other_hosts(base_url: str, refused: str | None) -> None:
    if refused is None:
        OpenAIJudge(base_url=base_url)
        return
    with pytest.raises(InputError, match=re.escape(refused)) as err:
        OpenAIJudge(base_url=base_url)
    assert f"judge base_url '{base_url}'" in str(err.value)


class RecordingServer(ThreadingHTTPServer):
    """Records the headers of every request; with `redirect_to`, answers each with that redirect status and
    Location, else with a chat completion."""

    def __init__(self, redirect_to: tuple[int, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.redirect_to = redirect_to
        self.headers_seen: list[dict[str, str]] = []


class RecordingHandler(BaseHTTPRequestHandler):
    server: RecordingServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - urllib turns a redirected POST into a GET
        self.server.headers_seen.append(dict(self.headers))
        if self.server.redirect_to is not None:
            status, location = self.server.redirect_to
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps({"choices": [{"message": {"content": "Preferred: A"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()


@pytest.fixture()
def serve() -> Iterator[list[RecordingServer]]:
    """Start `RecordingServer`s in threads (append to the list); all are shut down afterwards."""
    servers: list[RecordingServer] = []
    yield servers
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _start(servers: list[RecordingServer], srv: RecordingServer) -> RecordingServer:
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    servers.append(srv)
    return srv


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_openai_judge_never_sends_the_key_to_a_redirect_target(
    status: int, serve: list[RecordingServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server A (127.0.0.1) redirects to server B addressed as localhost, another host name: B must not get the key
    (urllib would re-send it there on a 301/302/303); the judge stops naming the redirect."""
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    target = _start(serve, RecordingServer())
    location = f"http://localhost:{target.server_address[1]}/v1/chat/completions"
    origin = _start(serve, RecordingServer(redirect_to=(status, location)))
    judge = OpenAIJudge(
        base_url=f"http://127.0.0.1:{origin.server_address[1]}/v1", api_key_env="TEST_JUDGE_KEY", max_retries=0
    )
    with pytest.raises(InputError, match=rf"redirected \(HTTP {status}\) to {re.escape(location)}") as err:
        judge.judge(*items()[:3])
    assert KEY not in str(err.value)
    assert origin.headers_seen and origin.headers_seen[0].get("Authorization") == f"Bearer {KEY}"  # the key was sent
    assert not any("Authorization" in headers for headers in target.headers_seen)
