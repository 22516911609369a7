"""A JSONL file of judge answers keyed by a hash of the question, so a rerun asks nothing twice.

Each line is {"key": <sha256 hex>, "model": <judge model>, "answer": <raw text>}. Only answers are stored, never
credentials. Appends are one short write each, so a crash loses at most the answer being written and several
processes appending to one file do not interleave lines on a local file system.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path


def question_key(**fields: str | float) -> str:
    """A stable sha256 hex digest of the named fields (order of the arguments does not matter)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class AnswerCache:
    """Answers by key, loaded from `path` (if it exists) and appended to it as they arrive.

    Args:
        path: the JSONL file; its folder is created on the first write.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._answers: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._answers[entry["key"]] = entry["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a crash: that question is simply asked again

    def get(self, key: str) -> str | None:
        return self._answers.get(key)

    def put(self, key: str, model: str, answer: str) -> None:
        with self._lock:
            self._answers[key] = answer
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"key": key, "model": model, "answer": answer}, ensure_ascii=False)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    def __len__(self) -> int:
        return len(self._answers)
