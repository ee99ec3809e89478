import json
import os
import subprocess
import sys

import pytest

from evsys.data.tokenizer import byte_tokenizer

TEXTS = [
    "hello world",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n",
    "37+45=",
    "héllo ✓ 日本語 🙂",
    "\x00\x01\x7f control bytes",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_one_token_per_byte(text):
    tokenizer = byte_tokenizer()
    ids = tokenizer(text)["input_ids"]
    assert ids == list(text.encode("utf-8"))  # nothing added, id == byte value
    assert tokenizer.decode(ids) == text


def test_special_tokens():
    tokenizer = byte_tokenizer()
    assert len(tokenizer) == 258
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 256
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.pad_token_id == 257
    assert tokenizer.bos_token_id is None
    assert tokenizer.decode([104, 105, 256, 257], skip_special_tokens=True) == "hi"


@pytest.mark.integration
def test_save_and_load_with_auto_tokenizer_in_fresh_process(tmp_path):
    tokenizer = byte_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    script = (
        "import json, sys\n"
        "from transformers import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(tmp_path)!r})\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps({'ids': [tok(t)['input_ids'] for t in texts],\n"
        "    'decoded': [tok.decode(tok(t)['input_ids']) for t in texts],\n"
        "    'special': [len(tok), tok.eos_token_id, tok.pad_token_id, tok.bos_token_id]}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(TEXTS),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["ids"] == [tokenizer(t)["input_ids"] for t in TEXTS]
    assert loaded["decoded"] == TEXTS
    assert loaded["special"] == [258, 256, 257, None]
