"""A pairwise judge over any OpenAI-compatible chat-completions endpoint, with the standard library's urllib.

The API key is read from the environment variable `api_key_env` when a request is about to be made; it is sent
only in the Authorization header and never stored, logged, or put in the cache key. With `cache_path`, answers are
cached (see `answer_cache`), so a rerun of the same evaluation costs no requests and needs no key.

The key goes only to the host named in `base_url`: plain `http://` is refused unless that host is this machine
(localhost, 127.0.0.1, ::1), and redirects are never followed. A redirect answer stops with an `InputError` naming
where it points, rather than being followed with the key dropped, because urllib turns a redirected POST into a GET
without its body, so a followed redirect could not return a judgement anyway; the fix is `base_url` set to the
final address.

Failures: HTTP 401/403 (key refused) and 404 (wrong base_url or model) stop with an `InputError`; HTTP 429 and 5xx,
time-outs and connection errors are retried `max_retries` times with exponential back-off, then the item counts
as invalid; any other failure, or a malformed response, counts as invalid at once. Failed items are not cached.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from typing import IO

from lit_daa.errors import InputError
from lit_daa.evaluation.judges.answer_cache import AnswerCache, question_key
from lit_daa.evaluation.judges.pairwise import Comparison, PairwiseJudge
from lit_daa.evaluation.judges.templates import TLDR_JUDGE_TEMPLATE

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_base_url(base_url: str) -> None:
    """Refuse a `base_url` that is not http(s), or plain http to another machine (the key would cross the
    network in clear text)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"judge base_url {base_url!r} must be an https:// address (or http:// to localhost)")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise InputError(
            f"judge base_url {base_url!r} is plain http to {parts.hostname}, which would send the API key and the "
            "texts unencrypted; use https://, or http:// only to localhost, 127.0.0.1 or ::1"
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: urllib then raises the 3xx answer as an HTTPError, which `OpenAIJudge` reports."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> None:
        return None


class OpenAIJudge(PairwiseJudge):
    """GPT-4-style pairwise judging over HTTP (see `PairwiseJudge` for A/B order and parsing).

    Args:
        base_url: the API root, https:// (or http:// to localhost, 127.0.0.1, ::1); requests go to
            {base_url}/chat/completions.
        model: the judge model name sent in each request.
        api_key_env: environment variable holding the API key; None: send no Authorization header (local servers).
        template: the judge prompt with {post}, {summary_a}, {summary_b}.
        temperature: sampling temperature of the judge (0: as deterministic as the server allows).
        cache_path: JSONL file of cached answers; None: no cache.
        seed: seed of the A/B order.
        timeout: seconds to wait for one response.
        max_retries: further attempts after a retryable failure.
        retry_wait: seconds before the first retry; doubled at each further one.
        max_tokens: most tokens of an answer (sent only when set).
        max_workers: requests in flight at once.
    """

    def __init__(
        self,
        base_url: str = "https://api.openai.com/v1",
        model: str = "gpt-4",
        api_key_env: str | None = "OPENAI_API_KEY",
        template: str = TLDR_JUDGE_TEMPLATE,
        temperature: float = 0.0,
        cache_path: str | None = None,
        seed: int = 0,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry_wait: float = 1.0,
        max_tokens: int | None = None,
        max_workers: int = 4,
    ) -> None:
        check_base_url(base_url)
        super().__init__(template=template, seed=seed)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env, self.temperature = model, api_key_env, temperature
        self.timeout, self.max_retries, self.retry_wait = timeout, max_retries, retry_wait
        self.max_tokens, self.max_workers = max_tokens, max(1, max_workers)
        self.cache = AnswerCache(cache_path) if cache_path else None
        self.requests_sent = 0  # HTTP requests made by this judge, retries included
        self.failed = 0  # items that got no answer
        self._count_lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirects)

    def ask(self, comparisons: list[Comparison]) -> list[str | None]:
        keys = [self._key(c) for c in comparisons]
        answers: list[str | None] = [self.cache.get(k) if self.cache else None for k in keys]
        todo = [i for i, answer in enumerate(answers) if answer is None]
        if not todo:
            return answers
        api_key = self._api_key()
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            results = pool.map(lambda i: self._request(comparisons[i].message, api_key), todo)
            for i, answer in zip(todo, results, strict=True):
                answers[i] = answer
                if answer is None:
                    self.failed += 1
                elif self.cache is not None:
                    self.cache.put(keys[i], self.model, answer)
        return answers

    def _key(self, c: Comparison) -> str:
        return question_key(
            model=self.model, temperature=self.temperature, template=self.template, post=c.post, a=c.first, b=c.second
        )

    def _api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise InputError(
                f"OpenAIJudge needs an API key in the environment variable {self.api_key_env}, which is not set"
            )
        return key

    def _request(self, message: str, api_key: str | None) -> str | None:
        body: dict = {"model": self.model, "messages": [{"role": "user", "content": message}]}
        body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        headers = {"Content-Type": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        data = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.retry_wait * 2 ** (attempt - 1))
            with self._count_lock:
                self.requests_sent += 1
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return _answer_text(response.read())
            except urllib.error.HTTPError as err:
                if err.code in (401, 403):
                    raise InputError(
                        f"the judge endpoint {self.url} refused the API key in {self.api_key_env} (HTTP {err.code})"
                    ) from None
                if 300 <= err.code < 400:
                    raise InputError(
                        f"the judge endpoint {self.url} redirected (HTTP {err.code}) to {err.headers.get('Location')}; "
                        "the judge follows no redirects, so the API key reaches only the host of judge base_url: set "
                        "base_url to the address it redirects to"
                    ) from None
                if err.code == 404:
                    raise InputError(
                        f"the judge endpoint {self.url} answered 404 (check judge base_url and model '{self.model}')"
                    ) from None
                log.warning("judge request failed with HTTP %s (attempt %d)", err.code, attempt + 1)
                if err.code not in RETRYABLE_STATUS:
                    return None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                log.warning("judge request failed: %s (attempt %d)", type(err).__name__, attempt + 1)
        return None


def _answer_text(raw: bytes) -> str | None:
    """choices[0].message.content of a chat-completions response; None when the response is not shaped so."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        log.warning("judge response was not a chat completion")
        return None
    return content if isinstance(content, str) else None
