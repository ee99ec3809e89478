"""A byte-level tokenizer built in code, so the default setup needs no files and no network.

Every UTF-8 byte is one token (id == byte value), so any string round-trips exactly and a
tiny model can learn character-level tasks without a trained vocabulary.
"""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def _byte_symbols() -> list[str]:
    """The printable character ByteLevel uses for each byte value 0..255, in byte order.

    ByteLevel (GPT-2 style) keeps printable Latin-1 bytes as themselves and shifts the others
    (control characters, space, ...) to code points from 256 up, so no symbol is whitespace.
    """
    printable = set(range(ord("!"), ord("~") + 1))
    printable |= set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), ord("ÿ") + 1))
    symbols, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A 258-token byte tokenizer: ids 0..255 are bytes, then EOS and PAD. No BOS is added."""
    vocab = {symbol: byte for byte, symbol in enumerate(_byte_symbols())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # No regex split and no prefix space: the text is mapped byte for byte, nothing added.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([EOS_TOKEN, PAD_TOKEN])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
    )
